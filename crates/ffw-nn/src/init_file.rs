//! A pretrained start: parameters read from a local safetensors file with the model's own
//! (for ResNet-18, torchvision's) names, e.g. ImageNet weights; never downloaded.
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};
use crate::params::{load_tensors, ParamStore};

/// What enters a job's identity: the path and, as a cheap stand-in for the content, the
/// size and modification time, so a replaced file makes a new job (touching it does too:
/// a retrain, never results of two starts mixed). Unreadable metadata leaves them out;
/// loading then fails naming the file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct InitFile {
    pub path: PathBuf,
    pub bytes: Option<u64>,
    pub modified_secs: Option<u64>,
}

impl InitFile {
    pub fn describe(path: &Path) -> Self {
        let meta = std::fs::metadata(path).ok();
        Self {
            path: path.to_path_buf(),
            bytes: meta.as_ref().map(|m| m.len()),
            modified_secs: meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
        }
    }
}

/// torch's BatchNorm step counter: bookkeeping in every torchvision state dict, no parameter.
fn is_bookkeeping(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Overwrites the parameters of `store` (a built model) with those of the file. Tensors
/// whose shape differs (the ImageNet head: 1000 classes) keep their seeded initialisation
/// and are returned; a tensor the model lacks is an error naming the file and the tensor.
pub fn load_into(store: &ParamStore, path: &Path, device: &Device) -> Result<Vec<String>> {
    let tensors = load_tensors(path, device)?;
    let vars: std::collections::HashMap<String, candle_core::Var> =
        store.vars().into_iter().collect();
    let mut names: Vec<&String> = tensors.keys().filter(|n| !is_bookkeeping(n)).collect();
    names.sort();
    let mut skipped = Vec::new();
    for name in names {
        let var = vars.get(name).ok_or_else(|| NnError::TensorFile {
            path: path.to_path_buf(),
            reason: format!("tensor {name}: the model has no parameter of that name"),
        })?;
        let t = &tensors[name];
        if t.dims() != var.dims() {
            tracing::warn!(file = %path.display(), tensor = %name, file_shape = ?t.dims(), model_shape = ?var.dims(), "pretrained start: shape differs, kept the seeded initialisation");
            skipped.push(name.clone());
            continue;
        }
        var.set(&t.to_dtype(DType::F32)?)?;
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelSpec, ResNet18Spec, Stem};
    use candle_core::Tensor;

    fn spec(n_classes: usize) -> ResNet18Spec {
        ResNet18Spec {
            n_classes,
            stem: Stem::Imagenet,
            width: 4,
        }
    }

    /// A small "pretrained" file: a width-4 ResNet-18 with a 10-class head, plus torch's
    /// step counters.
    fn pretrained(dir: &Path) -> Result<(PathBuf, std::collections::HashMap<String, Tensor>)> {
        let store = ParamStore::new(1, &Device::Cpu);
        spec(10).build(store.var_builder())?;
        let mut tensors = store.snapshot()?;
        tensors.insert(
            "bn1.num_batches_tracked".into(),
            Tensor::new(&[7i64], &Device::Cpu)?,
        );
        let path = dir.join("resnet18.safetensors");
        crate::params::save_tensors(&tensors, &path)?;
        Ok((path, tensors))
    }

    #[test]
    fn loads_matching_tensors_and_skips_the_head_of_another_shape() -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = pretrained(dir.path())?;
        let store = ParamStore::new(2, &Device::Cpu);
        spec(2).build(store.var_builder())?;
        let seeded = store.snapshot()?;
        let skipped = load_into(&store, &path, &Device::Cpu)?;
        assert_eq!(
            skipped,
            vec!["fc.bias".to_string(), "fc.weight".to_string()]
        );
        let loaded = store.snapshot()?;
        let same = |a: &Tensor, b: &Tensor| -> bool {
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert!(same(&loaded["conv1.weight"], &file["conv1.weight"]));
        assert!(!same(&seeded["conv1.weight"], &file["conv1.weight"]));
        assert!(same(
            &loaded["layer4.1.bn2.running_var"],
            &file["layer4.1.bn2.running_var"]
        ));
        assert!(same(&loaded["fc.weight"], &seeded["fc.weight"]));
        Ok(())
    }

    #[test]
    fn a_missing_file_or_an_unknown_tensor_is_an_error_naming_it() -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let store = ParamStore::new(2, &Device::Cpu);
        spec(2).build(store.var_builder())?;
        let missing = dir.path().join("none.safetensors");
        let e = load_into(&store, &missing, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.safetensors"), "{e}");

        let (path, mut file) = pretrained(dir.path())?;
        file.insert(
            "layer5.weight".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu)?,
        );
        crate::params::save_tensors(&file, &path)?;
        let e = load_into(&store, &path, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("resnet18.safetensors") && e.contains("layer5.weight"),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn a_replaced_file_changes_its_description() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        std::fs::write(&path, b"one").unwrap();
        let a = InitFile::describe(&path);
        std::fs::write(&path, b"other").unwrap();
        assert_ne!(a, InitFile::describe(&path));
        assert_eq!(InitFile::describe(&dir.path().join("none")).bytes, None);
    }
}
