//! What every kernel's test does: compare tensors, and compare the gradients of an op and of
//! its reference under one random projection of the output (which makes every gradient
//! entry distinct).
use candle_core::backprop::GradStore;
use candle_core::Tensor;

pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Gradients of `sum(ours · proj)` and of `sum(reference · proj)`.
pub fn projected_grads(ours: &Tensor, reference: &Tensor, proj: &Tensor) -> (GradStore, GradStore) {
    let grads = |t: &Tensor| (t * proj).unwrap().sum_all().unwrap().backward().unwrap();
    (grads(ours), grads(reference))
}
