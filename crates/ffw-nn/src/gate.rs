//! FFW's learnable gates as a transformation of a model's parameters (PROTOCOL §2).
//!
//! The frozen parameters stay in a tensor map; [`GateSet::effective_params`] returns a new map
//! in which every gated weight is `w * g(m / T)` (or `w * [m >= 0]` once pruned). Building the
//! model from that map with a `VarBuilder` gives the gated model without any gated layer type.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use ffw_results::{LayerSparsity, Sparsity, Variant};

use crate::arch::ModelSpec;
use crate::error::{NnError, Result};
use crate::params;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GateMode {
    /// Training: `g(m / T)`.
    Soft { temperature: f64 },
    /// Hard pruning: keep iff `m >= 0`.
    Hard,
}

/// `g(x) = min(2σ(x), 1)`, whose backward is that of the unclamped `2σ(x)` (straight-through
/// past the clamp, as in the authors' code).
pub use ffw_kernels::gate;

pub struct GatedLayer {
    pub name: String,
    /// The BatchNorm after the layer (see [`crate::GatedLayerSpec`]).
    pub norm: Option<String>,
    pub m: Var,
    /// Weights one gate entry controls: 1 (unstructured) or the unit's fan-in (structured).
    pub weights_per_gate: usize,
}

pub struct GateSet {
    pub variant: Variant,
    pub layers: Vec<GatedLayer>,
}

fn weight_name(layer: &str) -> String {
    format!("{layer}.weight")
}

fn bias_name(layer: &str) -> String {
    format!("{layer}.bias")
}

/// `t` with its unit `i` (first axis) multiplied by `g[i]`.
fn scale_units(t: &Tensor, g: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1usize; t.rank()];
    shape[0] = t.dim(0)?;
    Ok(t.broadcast_mul(&g.reshape(shape)?)?)
}

impl GateSet {
    /// Gates at 0 for every gated layer of `arch`: `g(0) = 1`, the vanilla model. With
    /// `gate_head` false the task head (the last gated layer) keeps all its weights.
    pub fn zeros(
        arch: &dyn ModelSpec,
        base: &HashMap<String, Tensor>,
        variant: Variant,
        gate_head: bool,
        device: &Device,
    ) -> Result<Self> {
        let mut specs = arch.gated_layers();
        if !gate_head {
            specs.pop();
        }
        let layers = specs
            .into_iter()
            .map(|crate::GatedLayerSpec { name, norm }| {
                let w = base.get(&weight_name(&name)).ok_or_else(|| {
                    NnError::Spec(format!("parameters have no tensor {}", weight_name(&name)))
                })?;
                let dims = w.dims();
                let (shape, per): (Vec<usize>, usize) = match variant {
                    Variant::Unstructured => (dims.to_vec(), 1),
                    Variant::Structured => (vec![dims[0]], dims[1..].iter().product()),
                };
                Ok(GatedLayer {
                    name,
                    norm,
                    m: Var::zeros(shape, DType::F32, device)?,
                    weights_per_gate: per,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { variant, layers })
    }

    pub fn vars(&self) -> Vec<Var> {
        self.layers.iter().map(|l| l.m.clone()).collect()
    }

    /// The parameter map of the gated model. A structured gate scales its unit's output:
    /// `g·(Wx + b)`, or, where a BatchNorm follows, the normalised output `g·BN(Wx + b)`
    /// through that BatchNorm's γ and β (BatchNorm is in inference mode throughout FFW). A
    /// hard-pruned unit also has its weights and bias zeroed, so it is removed outright and
    /// outputs exactly 0 after the normalisation.
    pub fn effective_params(
        &self,
        base: &HashMap<String, Tensor>,
        mode: GateMode,
    ) -> Result<HashMap<String, Tensor>> {
        let get = |name: &str| {
            base.get(name)
                .ok_or_else(|| NnError::Spec(format!("parameters have no tensor {name}")))
        };
        let mut out = base.clone();
        for layer in &self.layers {
            let wn = weight_name(&layer.name);
            let w = get(&wn)?;
            let m = layer.m.as_tensor();
            let hard = || -> Result<Tensor> { Ok(m.ge(0f32)?.to_dtype(DType::F32)?) };
            match (mode, self.variant) {
                // Fused: one pass over the weights each way (the hot path of every FFW step).
                (GateMode::Soft { temperature }, Variant::Unstructured) => {
                    out.insert(wn, ffw_kernels::gated_weight(w, m, temperature)?);
                }
                (GateMode::Hard, Variant::Unstructured) => {
                    out.insert(wn, (w * hard()?)?);
                }
                (mode, Variant::Structured) => {
                    let g = match mode {
                        GateMode::Soft { temperature } => gate(&(m / temperature)?)?,
                        GateMode::Hard => hard()?,
                    };
                    // The tensors whose units `g` scales.
                    let mut scaled = vec![bias_name(&layer.name)];
                    match (&layer.norm, mode) {
                        (Some(norm), GateMode::Soft { .. }) => {
                            get(&weight_name(norm))?;
                            scaled = vec![weight_name(norm), bias_name(norm)];
                        }
                        (Some(norm), GateMode::Hard) => {
                            get(&weight_name(norm))?;
                            scaled.extend([wn, weight_name(norm), bias_name(norm)]);
                        }
                        (None, GateMode::Soft { temperature }) => {
                            out.insert(wn, ffw_kernels::gated_weight(w, m, temperature)?);
                        }
                        (None, GateMode::Hard) => scaled.push(wn),
                    }
                    for name in scaled {
                        if let Some(t) = base.get(&name) {
                            out.insert(name, scale_units(t, &g)?);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Hard-pruning sparsity: a weight is pruned iff its gate entry is negative.
    pub fn sparsity(&self) -> Result<Sparsity> {
        let per_layer = self
            .layers
            .iter()
            .map(|l| {
                let m = l.m.as_tensor();
                let pruned_gates = m
                    .lt(0f32)?
                    .to_dtype(DType::F32)?
                    .sum_all()?
                    .to_scalar::<f32>()? as usize;
                Ok(LayerSparsity {
                    layer: l.name.clone(),
                    pruned: pruned_gates * l.weights_per_gate,
                    total: m.elem_count() * l.weights_per_gate,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Sparsity::from_layers(per_layer))
    }

    /// A detached copy, e.g. to remember the best intermediate mask.
    pub fn snapshot(&self) -> Result<GateSet> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(GatedLayer {
                    name: l.name.clone(),
                    norm: l.norm.clone(),
                    m: Var::from_tensor(&l.m.as_tensor().copy()?)?,
                    weights_per_gate: l.weights_per_gate,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GateSet {
            variant: self.variant,
            layers,
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let map = self
            .layers
            .iter()
            .map(|l| (l.name.clone(), l.m.as_tensor().clone()))
            .collect();
        params::save_tensors(&map, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Arch;
    use candle_core::Device;

    fn scalar_gate_and_grad(x: f32) -> (f32, f32) {
        let v = Var::new(&[x], &Device::Cpu).unwrap();
        let g = gate(v.as_tensor()).unwrap();
        let grads = g.sum_all().unwrap().backward().unwrap();
        let dg = grads.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0];
        (g.to_vec1::<f32>().unwrap()[0], dg)
    }

    #[test]
    fn gate_is_one_at_zero_with_derivative_one_half() {
        let (g, dg) = scalar_gate_and_grad(0.0);
        assert_eq!(g, 1.0);
        // d/dx 2σ(x) = 2σ(1-σ) = 0.5 at x = 0, although the clamp is active there.
        assert!((dg - 0.5).abs() < 1e-6, "{dg}");
    }

    #[test]
    fn gate_clamps_above_and_passes_gradient_straight_through() {
        let x = 2.0f32;
        let s = 1.0 / (1.0 + (-x).exp());
        let (g, dg) = scalar_gate_and_grad(x);
        assert_eq!(g, 1.0);
        assert!((dg - 2.0 * s * (1.0 - s)).abs() < 1e-6);
        let (g, _) = scalar_gate_and_grad(-1.0);
        let s = 1.0 / (1.0 + 1f32.exp());
        assert!((g - 2.0 * s).abs() < 1e-6);
    }

    fn base() -> HashMap<String, Tensor> {
        let dev = Device::Cpu;
        let mut m = HashMap::new();
        m.insert(
            "fc1.weight".into(),
            Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &dev).unwrap(),
        );
        m.insert("fc1.bias".into(), Tensor::new(&[1f32, -1.], &dev).unwrap());
        m.insert(
            "fc.weight".into(),
            Tensor::new(&[[1f32, 1.], [2., 2.]], &dev).unwrap(),
        );
        m.insert("fc.bias".into(), Tensor::new(&[0f32, 0.], &dev).unwrap());
        m
    }

    fn mlp() -> Arch {
        Arch::Mlp(crate::MlpSpec {
            input: 3,
            hidden: vec![2],
            n_classes: 2,
        })
    }

    #[test]
    fn hard_mask_keeps_exactly_the_non_negative_gates() -> Result<()> {
        let base = base();
        let gates = GateSet::zeros(&mlp(), &base, Variant::Unstructured, true, &Device::Cpu)?;
        gates.layers[0].m.set(&Tensor::new(
            &[[0f32, -1e-6, 3.], [-2., 0.5, -0.0]],
            &Device::Cpu,
        )?)?;
        let p = gates.effective_params(&base, GateMode::Hard)?;
        assert_eq!(
            p["fc1.weight"].to_vec2::<f32>()?,
            vec![vec![1., 0., 3.], vec![0., 5., 6.]]
        );
        assert_eq!(p["fc1.bias"].to_vec1::<f32>()?, vec![1., -1.]);
        let s = gates.sparsity()?;
        assert_eq!(
            s.per_layer[0],
            LayerSparsity {
                layer: "fc1".into(),
                pruned: 2,
                total: 6
            }
        );
        assert_eq!(s.per_layer[1].pruned, 0);
        assert!((s.global - 2.0 / 10.0).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn structured_gates_prune_whole_units_and_count_their_weights() -> Result<()> {
        let base = base();
        let gates = GateSet::zeros(&mlp(), &base, Variant::Structured, true, &Device::Cpu)?;
        gates.layers[0]
            .m
            .set(&Tensor::new(&[1f32, -1.], &Device::Cpu)?)?;
        let p = gates.effective_params(&base, GateMode::Hard)?;
        assert_eq!(
            p["fc1.weight"].to_vec2::<f32>()?,
            vec![vec![1., 2., 3.], vec![0., 0., 0.]]
        );
        assert_eq!(p["fc1.bias"].to_vec1::<f32>()?, vec![1., 0.]);
        let s = gates.sparsity()?;
        assert_eq!(
            s.per_layer[0],
            LayerSparsity {
                layer: "fc1".into(),
                pruned: 3,
                total: 6
            }
        );
        Ok(())
    }

    #[test]
    fn a_frozen_head_keeps_every_weight_and_counts_for_no_sparsity() -> Result<()> {
        let base = base();
        let gates = GateSet::zeros(&mlp(), &base, Variant::Structured, false, &Device::Cpu)?;
        assert_eq!(gates.layers.len(), 1);
        gates.layers[0]
            .m
            .set(&Tensor::new(&[-1f32, -1.], &Device::Cpu)?)?;
        let p = gates.effective_params(&base, GateMode::Hard)?;
        assert_eq!(p["fc1.weight"].to_vec2::<f32>()?, vec![vec![0.; 3]; 2]);
        assert_eq!(
            p["fc.weight"].to_vec2::<f32>()?,
            base["fc.weight"].to_vec2::<f32>()?
        );
        assert_eq!(gates.sparsity()?.global, 1.0);
        Ok(())
    }

    #[test]
    fn soft_gates_at_zero_reproduce_the_vanilla_parameters() -> Result<()> {
        let base = base();
        for variant in [Variant::Unstructured, Variant::Structured] {
            let gates = GateSet::zeros(&mlp(), &base, variant, true, &Device::Cpu)?;
            let p = gates.effective_params(&base, GateMode::Soft { temperature: 0.1 })?;
            for (k, v) in &base {
                let d = (&p[k] - v)?.abs()?.sum_all()?.to_scalar::<f32>()?;
                assert_eq!(d, 0.0, "{k}");
            }
        }
        Ok(())
    }

    /// `bn1(conv1(x))` of the SimpleConvNet built from `params`, on a fixed input.
    fn conv1_bn1(params: &HashMap<String, Tensor>) -> Result<Tensor> {
        let vb = candle_nn::VarBuilder::from_tensors(params.clone(), DType::F32, &Device::Cpu);
        let conv = crate::layers::conv2d_same(3, 16, 3, vb.pp("conv1"))?;
        let bn = crate::layers::batch_norm(16, vb.pp("bn1"))?;
        let x: Vec<f32> = (0..150)
            .map(|i| (i * 37 % 23) as f32 / 11.0 - 1.0)
            .collect();
        let x = Tensor::from_vec(x, (2, 3, 5, 5), &Device::Cpu)?;
        use candle_core::Module;
        Ok(bn.forward_act(
            &conv.forward(&x)?,
            crate::Mode::Eval,
            ffw_kernels::Act::Identity,
        )?)
    }

    /// SimpleConvNet's parameters with non-trivial BatchNorm statistics and affine terms.
    fn conv_net_base() -> Result<(Arch, HashMap<String, Tensor>)> {
        let dev = Device::Cpu;
        let arch = Arch::SimpleConvNet(crate::SimpleConvNetSpec {
            kernel: 3,
            n_classes: 10,
        });
        let store = crate::ParamStore::new(3, &dev);
        arch.build(store.var_builder())?;
        let mut base = store.snapshot()?;
        let u = |lo: f32, hi: f32| -> Result<Tensor> { Ok(Tensor::rand(lo, hi, 16, &dev)?) };
        base.insert("bn1.running_mean".into(), u(-1., 1.)?);
        base.insert("bn1.running_var".into(), u(0.5, 2.)?);
        base.insert("bn1.weight".into(), u(0.5, 1.5)?);
        base.insert("bn1.bias".into(), u(-1., 1.)?);
        Ok((arch, base))
    }

    #[test]
    fn a_pruned_structured_unit_outputs_exactly_zero_after_its_batch_norm() -> Result<()> {
        let (arch, base) = conv_net_base()?;
        let gates = GateSet::zeros(&arch, &base, Variant::Structured, true, &Device::Cpu)?;
        assert_eq!(gates.layers[0].norm.as_deref(), Some("bn1"));
        let pruned = 5usize;
        let m: Vec<f32> = (0..16)
            .map(|c| if c == pruned { -0.5 } else { 0.5 })
            .collect();
        gates.layers[0].m.set(&Tensor::new(m, &Device::Cpu)?)?;
        let ungated = conv1_bn1(&base)?;
        let gated = conv1_bn1(&gates.effective_params(&base, GateMode::Hard)?)?;
        for c in 0..16 {
            let (g, u) = (gated.narrow(1, c, 1)?, ungated.narrow(1, c, 1)?);
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            if c == pruned {
                assert!(g.iter().all(|v| *v == 0.0), "channel {c}: {g:?}");
            } else {
                // Kept units are bit-identical to the ungated model.
                assert_eq!(g, u.flatten_all()?.to_vec1::<f32>()?, "channel {c}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_soft_structured_gate_scales_the_post_batch_norm_output() -> Result<()> {
        let (arch, base) = conv_net_base()?;
        let gates = GateSet::zeros(&arch, &base, Variant::Structured, true, &Device::Cpu)?;
        let m: Vec<f32> = (0..16).map(|c| -0.2 * c as f32).collect();
        gates.layers[0]
            .m
            .set(&Tensor::new(m.clone(), &Device::Cpu)?)?;
        let temperature = 0.5;
        let params = gates.effective_params(&base, GateMode::Soft { temperature })?;
        // The convolution itself is untouched: the gate acts after the normalisation.
        assert_eq!(
            params["conv1.weight"].flatten_all()?.to_vec1::<f32>()?,
            base["conv1.weight"].flatten_all()?.to_vec1::<f32>()?
        );
        let ungated = conv1_bn1(&base)?;
        let gated = conv1_bn1(&params)?;
        for (c, mc) in m.iter().enumerate() {
            let g = (2.0 / (1.0 + (-mc / temperature as f32).exp())).min(1.0);
            let want = (ungated.narrow(1, c, 1)? * g as f64)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let got = gated.narrow(1, c, 1)?.flatten_all()?.to_vec1::<f32>()?;
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "channel {c}: {a} vs {b}"
                );
            }
        }
        Ok(())
    }
}
