//! `ffw sweep`: every job of a config's grid, on one process or over MPI ranks, resumable.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use ffw_sweep::exec::{run_local, Counts};
use ffw_sweep::grid::{expand, study_members};
use ffw_sweep::store::{JobState, Manifest, Store};
use ffw_sweep::RunConfig;

pub struct SweepArgs {
    pub config: PathBuf,
    pub output: Option<PathBuf>,
    pub dry_run: bool,
    pub retries: Option<usize>,
}

fn dry_run(cfg_path: &Path, store: &Store, jobs: &[ffw_sweep::grid::Job]) -> Result<()> {
    let states = store.states(jobs)?;
    let (mut done, mut incomplete, mut failed, mut fresh, mut damaged) = (0, 0, 0, 0, 0);
    for j in jobs {
        let state = match &states[&j.id] {
            JobState::Done => {
                done += 1;
                "done".to_string()
            }
            JobState::Incomplete => {
                incomplete += 1;
                "incomplete".to_string()
            }
            JobState::Failed { attempts, error } => {
                failed += 1;
                format!("failed x{attempts} ({error})")
            }
            JobState::NotStarted => {
                fresh += 1;
                "not started".to_string()
            }
            JobState::Damaged { reason } => {
                damaged += 1;
                format!("damaged ({reason})")
            }
        };
        println!("{}  {:<12} {}", j.id, state, j.describe(jobs));
    }
    let damaged = if damaged > 0 {
        format!(", {damaged} damaged")
    } else {
        String::new()
    };
    println!(
        "{} jobs: {done} done, {incomplete} incomplete, {failed} failed, {fresh} not started{damaged} ({})",
        jobs.len(),
        cfg_path.display()
    );
    Ok(())
}

/// Writes the report of what finished (failed jobs show as missing cells), then the counts.
/// A report that cannot be written (no font, say) is a warning: the results are all on disk.
fn finish(counts: Counts, out: &Path) -> Result<()> {
    if counts.interrupted > 0 || ffw_surgery::interrupt::requested() {
        // No report: the allocation is ending, and the next run writes it.
        return Err(crate::Interrupted {
            jobs: counts.interrupted,
        }
        .into());
    }
    if let Err(e) = crate::report::report(out) {
        tracing::warn!("no report: {e:#}; `ffw report {}` retries", out.display());
    }
    println!(
        "sweep {}: {} done, {} failed, {} skipped (journal: {})",
        out.display(),
        counts.done,
        counts.failed,
        counts.skipped,
        out.join("journal.jsonl").display()
    );
    if counts.failed + counts.skipped > 0 {
        bail!(
            "{} jobs failed and {} were skipped; rerun the same command to retry them",
            counts.failed,
            counts.skipped
        );
    }
    Ok(())
}

pub fn sweep(args: SweepArgs, threads_set: bool) -> Result<()> {
    // Everything the user wrote is checked before any rank starts working.
    let cfg = RunConfig::load(&args.config)?;
    let out = cfg.output_dir(&args.config, args.output.clone());
    let retries = args.retries.unwrap_or(cfg.sweep.retries);
    let jobs = expand(&cfg);
    if args.dry_run {
        return dry_run(&args.config, &Store::at(&out), &jobs);
    }
    cfg.check_data()
        .with_context(|| args.config.display().to_string())?;
    let store = Store::open(&out)?;
    let manifest = Manifest {
        studies: study_members(&cfg),
        config: cfg,
    };
    distribute(&store, &manifest, jobs, retries, threads_set, &out)
}

#[cfg(feature = "mpi")]
fn distribute(
    store: &Store,
    manifest: &Manifest,
    jobs: Vec<ffw_sweep::grid::Job>,
    retries: usize,
    threads_set: bool,
    out: &Path,
) -> Result<()> {
    use mpi::traits::Communicator;
    let universe =
        mpi::initialize().ok_or_else(|| anyhow::anyhow!("MPI was already initialised"))?;
    let world = universe.world();
    // Rank 0 writes for the whole world, so it alone holds the directory's lock.
    let _lock = if world.rank() == 0 {
        let lock = ffw_sweep::lock::acquire(out)?;
        store.write_manifest(manifest)?;
        Some(lock)
    } else {
        None
    };
    if world.size() == 1 {
        return finish(run_local(store, jobs, retries, &Device::Cpu)?, out);
    }
    let (local_rank, local_size) = ffw_sweep::distributed::node_local(&world);
    if !threads_set && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // CPU workers share the node's cores; the coordinator needs almost none.
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let share = (cores / local_size.max(1) as usize).max(1);
        std::env::set_var("RAYON_NUM_THREADS", share.to_string());
    }
    // One GPU per node-local rank when built with CUDA; the CPU otherwise.
    let device = Device::cuda_if_available(local_rank as usize)?;
    tracing::debug!(rank = world.rank(), local_rank, ?device, "worker ready");
    match ffw_sweep::distributed::run(&world, store, jobs, retries, &device)? {
        Some(counts) => finish(counts, out),
        None => Ok(()),
    }
}

#[cfg(not(feature = "mpi"))]
fn distribute(
    store: &Store,
    manifest: &Manifest,
    jobs: Vec<ffw_sweep::grid::Job>,
    retries: usize,
    _threads_set: bool,
    out: &Path,
) -> Result<()> {
    let _lock = ffw_sweep::lock::acquire(out)?;
    store.write_manifest(manifest)?;
    finish(run_local(store, jobs, retries, &Device::Cpu)?, out)
}
