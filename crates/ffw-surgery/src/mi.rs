//! The normalised empirical mutual information between bias labels and the privacy head's
//! softmax outputs on a minibatch (PROTOCOL §3), differentiable in `probs`.
use candle_core::{DType, Result, Tensor};

const FLOOR: f64 = 1e-15;

/// `probs`: `[N, K]` softmax outputs; `bias`: `[N]` u32 labels in `0..K`. Returns a scalar in
/// [0, 1] (normalised by ln K).
pub fn mutual_information(probs: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (n, k) = probs.dims2()?;
    let classes = Tensor::arange(0u32, k as u32, probs.device())?;
    let onehot = bias
        .unsqueeze(1)?
        .broadcast_eq(&classes.unsqueeze(0)?)?
        .to_dtype(DType::F32)?;
    let joint = (onehot.t()?.matmul(probs)? / n as f64)?.maximum(FLOOR)?;
    let rows = joint.sum_keepdim(1)?;
    let cols = joint.sum_keepdim(0)?;
    let product = rows.broadcast_mul(&cols)?.maximum(FLOOR)?;
    let terms = (&joint * (joint.div(&product)?).log()?)?;
    terms.sum_all()? / (k as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn mi(probs: Vec<Vec<f32>>, bias: Vec<u32>) -> f32 {
        let p = Tensor::new(probs, &Device::Cpu).unwrap();
        let b = Tensor::new(bias, &Device::Cpu).unwrap();
        mutual_information(&p, &b)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn independent_outputs_carry_no_information() {
        let v = mi(vec![vec![0.5, 0.5]; 4], vec![0, 1, 1, 0]);
        assert!(v.abs() < 1e-6, "{v}");
        // Independent but not uniform: p(j) the same for every sample, biased marginal on k.
        let v = mi(vec![vec![0.2, 0.3, 0.5]; 5], vec![0, 0, 0, 1, 2]);
        assert!(v.abs() < 1e-6, "{v}");
    }

    #[test]
    fn a_perfect_predictor_has_normalised_information_one() {
        let v = mi(
            vec![vec![1., 0., 0.], vec![0., 1., 0.], vec![0., 0., 1.]],
            vec![0, 1, 2],
        );
        assert!((v - 1.0).abs() < 1e-5, "{v}");
    }

    #[test]
    fn hand_computed_partial_dependence() {
        // Joint J = [[0.375, 0.125], [0.125, 0.375]], marginals 0.5 each:
        // I = 2·0.375·ln(1.5) + 2·0.125·ln(0.5), over ln 2.
        let v = mi(vec![vec![0.75, 0.25], vec![0.25, 0.75]], vec![0, 1]);
        let expected = (0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln()) / 2f64.ln();
        assert!((v as f64 - expected).abs() < 1e-6, "{v} vs {expected}");
    }

    #[test]
    fn gradient_flows_to_the_probabilities() {
        let p = candle_core::Var::new(&[[0.75f32, 0.25], [0.25, 0.75]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        let g = mutual_information(p.as_tensor(), &b)
            .unwrap()
            .backward()
            .unwrap();
        let g = g.get(p.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        // Raising the probability of the right class raises the information.
        assert!(g[0][0] > g[0][1] && g[1][1] > g[1][0], "{g:?}");
    }
}
