//! The job graph of a sweep. One vanilla job per (data/ρ, seed, vanilla epochs) trains and
//! scores the biased model (and its checkpoints); one FFW job per (vanilla job, checkpoint,
//! λ, variant) and one magnitude-pruning job per (vanilla job, sparsity) reuse it.
//! A job's identity is a hash of its canonical spec: it names the job's directory and seeds
//! the job, so results never depend on which rank ran it or in which order.
use ffw_nn::{Arch, InitFile, Variant};
use ffw_surgery::{FfwConfig, ProbeConfig, VanillaConfig};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::studies::Grid;
use ffw_data::DataConfig;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VanillaSpec {
    pub data: DataConfig,
    pub arch: Arch,
    pub vanilla: VanillaConfig,
    /// The privacy head trained on the vanilla model seeds every FFW job built on it.
    pub probe: ProbeConfig,
    /// The sweep's seed axis value (replicate index).
    pub seed: u64,
    /// The pretrained start (`[model] init`); absent from the spec without one, so job
    /// identities stay those of configs from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitFile>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FfwSpec {
    /// Identity of the vanilla job whose checkpoint this job starts from.
    pub vanilla: String,
    /// The vanilla checkpoint (epochs into training) to start from; none = the final model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<f64>,
    pub ffw: FfwConfig,
}

/// Global magnitude pruning of a vanilla model (the paper's baseline, Table 7).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MagnitudeSpec {
    pub vanilla: String,
    /// Fraction of the gated weights set to zero, smallest |w| first.
    pub sparsity: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    Vanilla(VanillaSpec),
    Ffw(FfwSpec),
    Magnitude(MagnitudeSpec),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: String,
    pub spec: JobSpec,
    /// Worker ranks that run it together, data-parallel (`ranks_per_job`); not part of its
    /// identity: a job's result does not depend on it beyond the order of float sums.
    pub ranks: usize,
}

impl Job {
    pub fn new(spec: JobSpec) -> Self {
        Self {
            id: job_id(&spec),
            spec,
            ranks: 1,
        }
    }

    /// The job on `ranks` ranks (vanilla and FFW jobs; magnitude pruning is too small to
    /// share).
    pub fn on_ranks(self, ranks: usize) -> Self {
        let ranks = match self.spec {
            JobSpec::Magnitude(_) => 1,
            _ => ranks,
        };
        Self { ranks, ..self }
    }

    /// Jobs that must be done first.
    pub fn deps(&self) -> Vec<&str> {
        match &self.spec {
            JobSpec::Vanilla(_) => vec![],
            JobSpec::Ffw(f) => vec![f.vanilla.as_str()],
            JobSpec::Magnitude(m) => vec![m.vanilla.as_str()],
        }
    }

    /// The job's random seed, derived from its identity.
    pub fn seed(&self) -> u64 {
        u64::from_str_radix(&self.id, 16).expect("job ids are 16 hex digits")
    }

    /// One line for listings: kind and the axis values.
    pub fn describe(&self, jobs: &[Job]) -> String {
        match &self.spec {
            JobSpec::Vanilla(v) => {
                let data = v.data.benchmark();
                let params: String = data
                    .params()
                    .iter()
                    .map(|(k, v)| format!(" {k}={v}"))
                    .collect();
                format!(
                    "vanilla {}{params} seed={} epochs={}",
                    data.name(),
                    v.seed,
                    v.vanilla.epochs
                )
            }
            JobSpec::Ffw(f) => {
                let variant = match f.ffw.variant {
                    Variant::Unstructured => "unstructured",
                    Variant::Structured => "structured",
                };
                let at = f.at.map(|a| format!(" at epoch {a}")).unwrap_or_default();
                format!(
                    "ffw {variant} lambda={}{at} <- {}",
                    f.ffw.lambda,
                    parent(jobs, &f.vanilla)
                )
            }
            JobSpec::Magnitude(m) => format!(
                "magnitude sparsity={} <- {}",
                m.sparsity,
                parent(jobs, &m.vanilla)
            ),
        }
    }
}

fn parent(jobs: &[Job], id: &str) -> String {
    jobs.iter()
        .find(|j| j.id == id)
        .map(|j| j.describe(jobs))
        .unwrap_or_default()
}

/// FNV-1a (64 bit) of the spec's JSON, whose object keys serde_json keeps sorted: stable
/// across runs, machines and field order in the TOML file. Numbers equal as numbers are one
/// value: `-0.0` hashes as `0.0`, so an axis listing both runs one job.
pub fn job_id(spec: &JobSpec) -> String {
    fn canonical(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => {
                *v = serde_json::json!(0.0)
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(canonical),
            serde_json::Value::Object(m) => m.values_mut().for_each(canonical),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(spec).expect("specs serialise");
    canonical(&mut value);
    let canonical = serde_json::to_string(&value).expect("json");
    format!("{:016x}", ffw_data::seeds::fnv1a(canonical.as_bytes()))
}

fn axis<T: Clone>(values: &[T], base: &[T]) -> Vec<T> {
    if values.is_empty() { base } else { values }.to_vec()
}

/// The jobs of one grid: vanilla jobs first, then the jobs built on them.
pub(crate) fn expand_grid(cfg: &RunConfig, grid: &Grid) -> Vec<Job> {
    let axes = &grid.axes;
    let mut vanilla_jobs = Vec::new();
    let mut users = Vec::new();
    let variants = axis(&axes.variants, &cfg.ffw.variants);
    let starts: Vec<Option<f64>> = std::iter::once(None)
        .chain(axes.at.iter().copied().map(Some))
        .collect();
    // `rho` is the one data axis (Biased MNIST's ρ); without it, one data setting.
    let data_points: Vec<DataConfig> = if axes.rho.is_empty() {
        vec![grid.data.clone()]
    } else {
        axes.rho
            .iter()
            .map(|&r| {
                grid.data
                    .with_param("rho", r)
                    .expect("validated: the benchmark has a rho")
            })
            .collect()
    };
    for data in &data_points {
        for &seed in &axis(&axes.seeds, &[cfg.seed]) {
            for &epochs in &axis(&axes.vanilla_epochs, &[grid.vanilla.epochs]) {
                let vanilla = Job::new(JobSpec::Vanilla(VanillaSpec {
                    data: data.clone(),
                    arch: grid.arch(),
                    vanilla: VanillaConfig {
                        epochs,
                        ..grid.vanilla.clone()
                    },
                    probe: cfg.ffw.settings.probe.clone(),
                    seed,
                    init: grid.model.init.as_deref().map(InitFile::describe),
                }))
                .on_ranks(grid.ranks);
                for &at in &starts {
                    for &lambda in &axis(&axes.lambda, &[cfg.ffw.settings.lambda]) {
                        for &variant in &variants {
                            let ffw = FfwConfig {
                                lambda,
                                variant,
                                ..cfg.ffw.settings.clone()
                            };
                            users.push(
                                Job::new(JobSpec::Ffw(FfwSpec {
                                    vanilla: vanilla.id.clone(),
                                    at,
                                    ffw,
                                }))
                                .on_ranks(grid.ranks),
                            );
                        }
                    }
                }
                for &sparsity in &axes.magnitude {
                    users.push(Job::new(JobSpec::Magnitude(MagnitudeSpec {
                        vanilla: vanilla.id.clone(),
                        sparsity,
                    })));
                }
                vanilla_jobs.push(vanilla);
            }
        }
    }
    vanilla_jobs.extend(users);
    vanilla_jobs
}

/// Every job of the config: the union of its grids ([`RunConfig::grids`]), each job once
/// (on the most ranks any of its grids gives it), vanilla jobs first.
pub fn expand(cfg: &RunConfig) -> Vec<Job> {
    let mut seen = std::collections::HashMap::new();
    let mut all: Vec<Job> = Vec::new();
    for job in cfg.grids().iter().flat_map(|grid| expand_grid(cfg, grid)) {
        match seen.get(&job.id) {
            Some(&i) => {
                let first: &mut Job = &mut all[i];
                first.ranks = first.ranks.max(job.ranks);
            }
            None => {
                seen.insert(job.id.clone(), all.len());
                all.push(job);
            }
        }
    }
    all.sort_by_key(|j| !matches!(j.spec, JobSpec::Vanilla(_)));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The job identities of each grid by study name ("grid" when no study is declared).
    fn study_members(cfg: &RunConfig) -> BTreeMap<String, Vec<String>> {
        cfg.grids()
            .iter()
            .map(|grid| {
                let ids = expand_grid(cfg, grid).into_iter().map(|j| j.id).collect();
                (grid.name.to_string(), ids)
            })
            .collect()
    }

    fn cfg(extra: &str) -> RunConfig {
        let text = format!(
            "[data]\nkind = \"biased_mnist\"\ndir = \"d\"\nrho = 0.99\n[model]\nkernel = 3\n[ffw]\nvariants = [\"unstructured\", \"structured\"]\n{extra}"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn the_grid_shares_one_vanilla_job_per_data_seed_and_epochs() {
        let jobs = expand(&cfg(
            "[sweep]\nseeds = [0, 1]\nrho = [0.99, 0.995]\nlambda = [2.0, 10.0, 50.0]\n",
        ));
        let vanilla: Vec<_> = jobs
            .iter()
            .filter(|j| matches!(j.spec, JobSpec::Vanilla(_)))
            .collect();
        assert_eq!(vanilla.len(), 4);
        assert_eq!(jobs.len(), 4 + 4 * 3 * 2);
        for v in &vanilla {
            let users = jobs
                .iter()
                .filter(|j| j.deps() == vec![v.id.as_str()])
                .count();
            assert_eq!(users, 6);
        }
        let mut ids: Vec<_> = jobs.iter().map(|j| j.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), jobs.len(), "identities must be distinct");
    }

    #[test]
    fn identity_is_stable_and_depends_on_every_setting() {
        let a = expand(&cfg(""));
        assert_eq!(a, expand(&cfg("")));
        let b = expand(&cfg("lambda = 5.0\n"));
        assert_eq!(a[0].id, b[0].id, "λ does not change the vanilla job");
        assert_ne!(a[1].id, b[1].id);
        assert_eq!(a[0].seed(), u64::from_str_radix(&a[0].id, 16).unwrap());
        // The default of a key added later leaves the identities of existing results alone.
        assert_eq!(a, expand(&cfg("gate_head = true\n")));
        let c = expand(&cfg("gate_head = false\n"));
        assert_eq!(a[0].id, c[0].id);
        assert_ne!(a[1].id, c[1].id);
    }

    /// A pretrained start is part of the vanilla identity (and so of every job on it), and
    /// a replaced file is a new job.
    #[test]
    fn the_pretrained_file_enters_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resnet18.safetensors");
        std::fs::write(&path, b"weights").unwrap();
        let mut c = cfg("");
        let a = expand(&c);
        c.model.init = Some(path.clone());
        let b = expand(&c);
        std::fs::write(&path, b"other weights").unwrap();
        let d = expand(&c);
        assert_ne!(a[0].id, b[0].id);
        assert_ne!(a[1].id, b[1].id);
        assert_ne!(b[0].id, d[0].id);
    }

    #[test]
    fn identities_are_pinned_and_zero_has_one_sign() {
        // The identities of a sweep run months ago (the report's fixture): changing how
        // identities are computed would orphan every finished sweep's results.
        #[derive(serde::Deserialize)]
        struct Written {
            config: RunConfig,
            studies: BTreeMap<String, Vec<String>>,
        }
        let written: Written = serde_json::from_str(include_str!(
            "../../ffw-report/tests/quick_sweep/sweep.json"
        ))
        .unwrap();
        assert_eq!(study_members(&written.config), written.studies);
        let jobs = expand(&cfg("[sweep]\nlambda = [0.0, -0.0]\nrho = [0.0, -0.0]\n"));
        assert_eq!(
            jobs.len(),
            1 + 2,
            "one vanilla job and one FFW job per variant"
        );
    }

    #[test]
    fn studies_share_jobs_and_add_checkpoint_and_magnitude_jobs() {
        let c = cfg(
            "[vanilla]\nepochs = 4\ncheckpoints = [0.5, 2.0]\n[sweep]\nseeds = [0, 1]\n\
             [studies.lambda]\nlambda = [2.0, 10.0]\nvariants = [\"unstructured\"]\n\
             [studies.epochs]\nat = [0.5, 2.0]\nvariants = [\"unstructured\"]\n\
             [studies.magnitude]\nmagnitude = [0.5, 0.9]\nvariants = [\"unstructured\"]\n",
        );
        let jobs = expand(&c);
        let count = |f: fn(&JobSpec) -> bool| jobs.iter().filter(|j| f(&j.spec)).count();
        // One vanilla job per seed, shared by all three studies.
        assert_eq!(count(|s| matches!(s, JobSpec::Vanilla(_))), 2);
        // Per seed: λ 2 and 10 (final), λ 10 at 0.5 and 2.0 epochs.
        assert_eq!(count(|s| matches!(s, JobSpec::Ffw(_))), 2 * 4);
        assert_eq!(count(|s| matches!(s, JobSpec::Magnitude(_))), 2 * 2);
        assert!(jobs[..2]
            .iter()
            .all(|j| matches!(j.spec, JobSpec::Vanilla(_))));
        let studies = study_members(&c);
        assert_eq!(studies["lambda"].len(), 2 + 2 * 2);
        assert_eq!(studies["epochs"].len(), 2 + 2 * 3);
        assert_eq!(studies["magnitude"].len(), 2 + 2 + 2 * 2);
        let ids: std::collections::HashSet<_> = jobs.iter().map(|j| &j.id).collect();
        assert!(studies.values().flatten().all(|id| ids.contains(id)));
        // The λ=10 final job belongs to all three studies.
        let shared = studies["lambda"]
            .iter()
            .filter(|id| studies["epochs"].contains(id) && studies["magnitude"].contains(id))
            .count();
        assert_eq!(shared, 2 + 2, "vanilla and λ=10 FFW jobs, per seed");
    }
}
