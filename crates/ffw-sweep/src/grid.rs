//! The job graph of a sweep. One vanilla job per (data/ρ, seed, vanilla epochs) trains and
//! scores the biased model; one FFW job per (vanilla job, λ, variant) reuses its checkpoint.
//! A job's identity is a hash of its canonical spec: it names the job's directory and seeds
//! the job, so results never depend on which rank ran it or in which order.
use ffw_nn::{Arch, Variant};
use ffw_surgery::{FfwConfig, ProbeConfig, VanillaConfig};
use serde::{Deserialize, Serialize};

use crate::config::{DataConfig, RunConfig};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VanillaSpec {
    pub data: DataConfig,
    pub arch: Arch,
    pub vanilla: VanillaConfig,
    /// The privacy head trained on the vanilla model seeds every FFW job built on it.
    pub probe: ProbeConfig,
    /// The sweep's seed axis value (replicate index).
    pub seed: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FfwSpec {
    /// Identity of the vanilla job whose checkpoint this job starts from.
    pub vanilla: String,
    pub ffw: FfwConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    Vanilla(VanillaSpec),
    Ffw(FfwSpec),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: String,
    pub spec: JobSpec,
}

impl Job {
    pub fn new(spec: JobSpec) -> Self {
        Self {
            id: job_id(&spec),
            spec,
        }
    }

    /// Jobs that must be done first.
    pub fn deps(&self) -> Vec<&str> {
        match &self.spec {
            JobSpec::Vanilla(_) => vec![],
            JobSpec::Ffw(f) => vec![f.vanilla.as_str()],
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
                format!(
                    "vanilla rho={} seed={} epochs={}",
                    v.data.rho(),
                    v.seed,
                    v.vanilla.epochs
                )
            }
            JobSpec::Ffw(f) => {
                let parent = jobs
                    .iter()
                    .find(|j| j.id == f.vanilla)
                    .map(|j| j.describe(jobs))
                    .unwrap_or_default();
                let variant = match f.ffw.variant {
                    Variant::Unstructured => "unstructured",
                    Variant::Structured => "structured",
                };
                format!("ffw {variant} lambda={} <- {parent}", f.ffw.lambda)
            }
        }
    }
}

/// FNV-1a (64 bit) of the spec's JSON, whose object keys serde_json keeps sorted: stable
/// across runs, machines and field order in the TOML file.
pub fn job_id(spec: &JobSpec) -> String {
    let canonical =
        serde_json::to_string(&serde_json::to_value(spec).expect("specs serialise")).expect("json");
    let mut h: u64 = 0xcbf29ce484222325;
    for b in canonical.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn axis<T: Clone>(values: &[T], base: T) -> Vec<T> {
    if values.is_empty() {
        vec![base]
    } else {
        values.to_vec()
    }
}

/// Every job of the config's grid: vanilla jobs first, each followed by nothing; FFW jobs after.
pub fn expand(cfg: &RunConfig) -> Vec<Job> {
    let mut vanilla_jobs = Vec::new();
    let mut ffw_jobs = Vec::new();
    for &rho in &axis(&cfg.sweep.rho, cfg.data.rho()) {
        for &seed in &axis(&cfg.sweep.seeds, cfg.seed) {
            for &epochs in &axis(&cfg.sweep.vanilla_epochs, cfg.vanilla.epochs) {
                let vanilla = Job::new(JobSpec::Vanilla(VanillaSpec {
                    data: cfg.data.with_rho(rho),
                    arch: cfg.arch(),
                    vanilla: VanillaConfig {
                        epochs,
                        ..cfg.vanilla.clone()
                    },
                    probe: cfg.ffw.settings.probe.clone(),
                    seed,
                }));
                for &lambda in &axis(&cfg.sweep.lambda, cfg.ffw.settings.lambda) {
                    for &variant in &cfg.ffw.variants {
                        let ffw = FfwConfig {
                            lambda,
                            variant,
                            ..cfg.ffw.settings.clone()
                        };
                        ffw_jobs.push(Job::new(JobSpec::Ffw(FfwSpec {
                            vanilla: vanilla.id.clone(),
                            ffw,
                        })));
                    }
                }
                vanilla_jobs.push(vanilla);
            }
        }
    }
    vanilla_jobs.extend(ffw_jobs);
    vanilla_jobs
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
