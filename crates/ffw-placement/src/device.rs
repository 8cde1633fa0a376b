//! `--device cpu|cuda|cuda:N|auto`: what a process asks for, opened with errors that name the
//! flag, and described for the results.
use candle_core::{Device, DeviceLocation};
use ffw_results::{DeviceInfo, DeviceKind};

use crate::binding::{gpu_of, Worker};
use crate::error::{host, PlacementError, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    /// A GPU: this one, or none for the worker's own ([`gpu_of`]).
    Cuda(Option<usize>),
    /// The worker's GPU where the build and the node have one, the CPU otherwise.
    Auto,
}

impl std::str::FromStr for DeviceChoice {
    type Err = PlacementError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || PlacementError::BadDevice { given: s.into() };
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(None)),
            "auto" => Ok(Self::Auto),
            _ => {
                let index = s.strip_prefix("cuda:").ok_or_else(bad)?;
                Ok(Self::Cuda(Some(index.parse().map_err(|_| bad())?)))
            }
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(None) => f.write_str("cuda"),
            Self::Cuda(Some(i)) => write!(f, "cuda:{i}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

/// GPUs the driver shows this process (after `CUDA_VISIBLE_DEVICES`); 0 in a build without
/// CUDA or where the driver cannot start.
pub fn gpu_count() -> usize {
    #[cfg(feature = "cuda")]
    {
        candle_core::cuda::cudarc::driver::CudaContext::device_count()
            .map(|n| n.max(0) as usize)
            .unwrap_or(0)
    }
    #[cfg(not(feature = "cuda"))]
    0
}

/// Whether candle was built with its CUDA backend.
pub fn cuda_built() -> bool {
    candle_core::utils::cuda_is_available()
}

/// The device `choice` names for `worker`: a bare `cuda` (or `auto` on a GPU node) binds the
/// worker's GPU, at most `workers_per_gpu` workers to each.
pub fn open(choice: DeviceChoice, worker: Worker, workers_per_gpu: usize) -> Result<Device> {
    let gpus = match choice {
        DeviceChoice::Cpu => return Ok(Device::Cpu),
        DeviceChoice::Auto if !cuda_built() => return Ok(Device::Cpu),
        DeviceChoice::Auto => match gpu_count() {
            0 => return Ok(Device::Cpu),
            n => n,
        },
        DeviceChoice::Cuda(_) if !cuda_built() => {
            return Err(PlacementError::NoCudaBuild {
                choice: choice.to_string(),
            })
        }
        DeviceChoice::Cuda(_) => gpu_count(),
    };
    if gpus == 0 {
        return Err(PlacementError::NoGpu {
            choice: choice.to_string(),
            host: host(),
            visible: std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_else(|_| "unset".into()),
        });
    }
    let index = match choice {
        DeviceChoice::Cuda(Some(i)) if i >= gpus => {
            return Err(PlacementError::NoSuchGpu {
                choice: choice.to_string(),
                host: host(),
                count: gpus,
            })
        }
        DeviceChoice::Cuda(Some(i)) => i,
        _ => gpu_of(worker, gpus, workers_per_gpu)?,
    };
    Device::new_cuda(index).map_err(|source| PlacementError::Open {
        device: format!("cuda:{index}"),
        source,
    })
}

/// Kind, ordinal and model name of `device`, for `result.json`.
pub fn describe(device: &Device) -> DeviceInfo {
    match device.location() {
        DeviceLocation::Cuda { gpu_id } => DeviceInfo {
            kind: DeviceKind::Cuda,
            index: Some(gpu_id),
            name: gpu_name(device),
        },
        // No Metal build exists; it would read as a CPU.
        _ => DeviceInfo {
            kind: DeviceKind::Cpu,
            index: None,
            name: cpu_name(),
        },
    }
}

fn gpu_name(device: &Device) -> String {
    #[cfg(feature = "cuda")]
    if let Some(name) = device
        .as_cuda_device()
        .ok()
        .and_then(|d| d.cuda_stream().context().name().ok())
    {
        return name;
    }
    let _ = device;
    "unknown GPU".into()
}

/// The CPU's model name from /proc/cpuinfo, else its architecture.
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_flags_parse_and_print_back() {
        for s in ["cpu", "cuda", "cuda:3", "auto"] {
            assert_eq!(s.parse::<DeviceChoice>().unwrap().to_string(), s);
        }
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU"] {
            let err = bad.parse::<DeviceChoice>().unwrap_err().to_string();
            assert!(err.contains("expected cpu, cuda, cuda:N or auto"), "{err}");
        }
    }

    #[test]
    fn the_cpu_opens_and_describes_itself() {
        let d = open(DeviceChoice::Cpu, Worker::SOLO, 1).unwrap();
        let info = describe(&d);
        assert_eq!((info.kind, info.index), (DeviceKind::Cpu, None));
        assert_eq!(info.to_string(), "cpu");
        assert!(!info.name.is_empty());
    }

    /// What a CPU build (or a node without a GPU) says when asked for one: a single line
    /// naming the flag, never candle's text.
    #[test]
    fn asking_for_a_missing_gpu_fails_in_one_clear_line() {
        if gpu_count() > 0 {
            return; // A GPU node opens it: nothing to refuse.
        }
        for choice in [DeviceChoice::Cuda(None), DeviceChoice::Cuda(Some(1))] {
            let err = open(choice, Worker::SOLO, 1).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
            assert!(err.starts_with(&format!("--device {choice}: ")), "{err}");
            if cuda_built() {
                assert!(err.contains("no CUDA GPU is visible"), "{err}");
            } else {
                assert!(err.contains("built without CUDA"), "{err}");
            }
        }
        // `auto` falls back to the CPU.
        assert!(open(DeviceChoice::Auto, Worker::SOLO, 1).unwrap().is_cpu());
    }
}
