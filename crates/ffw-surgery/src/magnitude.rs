//! Global magnitude pruning, the paper's baseline (Table 7 / Fig. 6): zero the given fraction
//! of all gated weights, smallest |w| first across every layer at once. The mask is returned
//! as an unstructured [`GateSet`] (m = +1 keep, -1 prune), so it is applied, counted and
//! scored exactly like an FFW mask in hard mode.
use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use ffw_nn::gate::{GateSet, GatedLayer};
use ffw_nn::{ModelSpec, Variant};

use crate::error::{Result, SurgeryError};

pub fn magnitude_mask(
    arch: &dyn ModelSpec,
    base: &HashMap<String, Tensor>,
    sparsity: f64,
    device: &Device,
) -> Result<GateSet> {
    if !(0.0..=1.0).contains(&sparsity) {
        return Err(SurgeryError::Config(format!(
            "magnitude sparsity must be in [0, 1], got {sparsity}"
        )));
    }
    let specs = arch.gated_layers();
    let mut weights = Vec::with_capacity(specs.len());
    for spec in &specs {
        let key = format!("{}.weight", spec.name);
        let w = base
            .get(&key)
            .ok_or_else(|| SurgeryError::Config(format!("parameters have no tensor {key}")))?;
        weights.push((w.dims().to_vec(), w.flatten_all()?.to_vec1::<f32>()?));
    }
    // Rank every weight by (|w|, position): ties are broken by position, so exactly
    // round(sparsity * n) weights go, deterministically.
    let mut order: Vec<(f32, usize, usize)> = weights
        .iter()
        .enumerate()
        .flat_map(|(l, (_, w))| w.iter().enumerate().map(move |(i, v)| (v.abs(), l, i)))
        .collect();
    let n_prune = (sparsity * order.len() as f64).round() as usize;
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let mut keep: Vec<Vec<f32>> = weights.iter().map(|(_, w)| vec![1.0; w.len()]).collect();
    for &(_, l, i) in &order[..n_prune] {
        keep[l][i] = -1.0;
    }
    let layers = specs
        .into_iter()
        .zip(weights.iter().zip(keep))
        .map(|(spec, ((dims, _), m))| {
            Ok(GatedLayer {
                name: spec.name,
                norm: spec.norm,
                m: Var::from_tensor(&Tensor::from_vec(m, dims.as_slice(), device)?)?,
                weights_per_gate: 1,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GateSet {
        variant: Variant::Unstructured,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ffw_nn::Arch;
    use ffw_nn::GateMode;

    fn mlp_params() -> (Arch, HashMap<String, Tensor>) {
        let arch = Arch::Mlp(ffw_nn::MlpSpec {
            input: 3,
            hidden: vec![2],
            n_classes: 2,
        });
        let d = Device::Cpu;
        let t = |v: &[f32], s: &[usize]| Tensor::from_slice(v, s, &d).unwrap();
        let mut p = HashMap::new();
        // Gated weights: 6 in the hidden layer, 4 in the head fc; |w| = 1..10 interleaved.
        p.insert(
            "fc1.weight".into(),
            t(&[-1.0, 8.0, 3.0, -6.0, 5.0, 10.0], &[2, 3]),
        );
        p.insert("fc1.bias".into(), t(&[0.5, 0.5], &[2]));
        p.insert("fc.weight".into(), t(&[2.0, -9.0, 4.0, -7.0], &[2, 2]));
        p.insert("fc.bias".into(), t(&[0.1, 0.1], &[2]));
        (arch, p)
    }

    #[test]
    fn prunes_the_globally_smallest_weights() {
        let (arch, base) = mlp_params();
        assert_eq!(
            arch.gated_layers()
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>(),
            ["fc1", "fc"],
            "fixture names"
        );
        let mask = magnitude_mask(&arch, &base, 0.4, &Device::Cpu).unwrap();
        let s = mask.sparsity().unwrap();
        assert_eq!(s.global, 0.4);
        assert_eq!(s.per_layer[0].pruned + s.per_layer[1].pruned, 4);
        let pruned = mask.effective_params(&base, GateMode::Hard).unwrap();
        let fc1 = pruned["fc1.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let head = pruned["fc.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // |w| 1, 2, 3, 4 go; everything else and the biases stay.
        assert_eq!(fc1, vec![0.0, 8.0, 0.0, -6.0, 5.0, 10.0]);
        assert_eq!(head, vec![0.0, -9.0, 0.0, -7.0]);
        assert_eq!(pruned["fc1.bias"].to_vec1::<f32>().unwrap(), vec![0.5, 0.5]);
    }

    #[test]
    fn rejects_sparsity_outside_unit_interval() {
        let (arch, base) = mlp_params();
        assert!(magnitude_mask(&arch, &base, 1.5, &Device::Cpu).is_err());
        let none = magnitude_mask(&arch, &base, 0.0, &Device::Cpu).unwrap();
        assert_eq!(none.sparsity().unwrap().global, 0.0);
    }
}
