//! Vanilla training and the FFW surgery (PROTOCOL §2–§4).
//!
//! Flow: [`vanilla`] trains the biased model; [`surgery`] learns gates on its frozen
//! parameters against `CE + λ·MI`; [`evaluate`] scores any parameter map (vanilla, pruned)
//! with a freshly trained privacy head; [`magnitude`] is the paper's pruning baseline.

pub mod augment;
pub mod config;
pub mod data_parallel;
pub mod encode;
pub mod error;
pub mod evaluate;
pub mod interrupt;
pub mod magnitude;
pub mod mi;
pub mod optim;
pub mod probe;
pub mod progress;
pub mod running;
pub mod saved_model;
pub mod schedule;
pub mod seeds;
pub mod surgery;
pub mod vanilla;

pub use augment::AugmentConfig;
pub use config::{
    FfwConfig, LrSchedule, OptimizerConfig, PlateauConfig, ProbeConfig, VanillaConfig,
};
pub use error::{Result, SurgeryError};
