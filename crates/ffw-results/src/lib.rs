//! What a job writes to `result.json` and the report reads, as plain serde types: no candle,
//! no kernels, so the report builds without the training stack, and the writer and the
//! reader agree on one schema, versioned by [`SCHEMA_VERSION`].
pub mod device;
pub mod jobs;
pub mod manifest;
pub mod schema;
pub mod scores;

pub use device::{DeviceInfo, DeviceKind};
pub use jobs::{
    CheckpointReport, FfwEpoch, FfwResult, MagnitudeResult, TemperatureChange, VanillaEpoch,
    VanillaResult, Variant,
};
pub use manifest::{BasePoint, DataPoint, JobEntry, JobKind, Manifest, Study, MANIFEST};
pub use schema::{
    check_result, read_result, ResultFile, ResultsError, RESULT_JOB_KEY, SCHEMA_VERSION,
};
pub use scores::{LayerSparsity, MaskReport, Sparsity, SplitScores, COLLAPSE_MARGIN};
