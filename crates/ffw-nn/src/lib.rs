//! Models for FFW, built the candle-nn way: plain structs constructed from a `VarBuilder`.
//!
//! Parameters live outside the models: a [`ParamStore`] (seeded, trainable) while training,
//! a frozen tensor map afterwards. FFW's gates are a transformation of that map
//! ([`gate::effective_params`]), so no layer type is ever duplicated for gating.

pub mod arch;
pub mod error;
pub mod gate;
pub mod init_file;
pub mod layers;
pub mod mlp;
pub mod params;
pub mod probe;
pub mod resnet;
pub mod simple_conv;

pub use arch::{Arch, Backbone, GatedLayerSpec, Model, ModelSpec};
pub use error::{NnError, Result};
pub use ffw_results::Variant;
pub use gate::{GateMode, GateSet};
pub use init_file::InitFile;
pub use layers::Mode;
pub use mlp::MlpSpec;
pub use params::ParamStore;
pub use probe::PrivacyHead;
pub use resnet::{ResNet18Spec, Stem};
pub use simple_conv::SimpleConvNetSpec;
