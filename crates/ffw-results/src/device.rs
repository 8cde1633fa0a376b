//! The device a job ran on, as its result records it: results from CPUs and GPUs differ in
//! the last digits, so a table must know which it holds.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Cpu,
    Cuda,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    /// The GPU's ordinal on its node; none for the CPU.
    pub index: Option<usize>,
    /// The GPU's or CPU's model name.
    pub name: String,
}

impl std::fmt::Display for DeviceInfo {
    /// `cpu` or `cuda:N`, as `--device` spells it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}:{i}", self.kind.as_str()),
            None => f.write_str(self.kind.as_str()),
        }
    }
}
