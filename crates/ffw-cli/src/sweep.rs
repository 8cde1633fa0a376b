//! `ffw sweep`: every job of a config's grid, on one process or over MPI ranks, resumable.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ffw_placement::{DeviceChoice, Worker};
use ffw_sweep::exec::run_local;
use ffw_sweep::grid::expand;
use ffw_sweep::manifest::SweepManifest;
use ffw_sweep::scheduler::Counts;
use ffw_sweep::status::Summary;
use ffw_sweep::store::{JobState, Store};
use ffw_sweep::RunConfig;

pub struct SweepArgs {
    pub config: PathBuf,
    pub output: Option<PathBuf>,
    pub dry_run: bool,
    pub retries: Option<usize>,
    pub status_every: std::time::Duration,
    pub device: DeviceChoice,
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
        let ranks = match j.ranks {
            1 => String::new(),
            k => format!(" [{k} ranks]"),
        };
        println!("{}  {:<12} {}{ranks}", j.id, state, j.describe(jobs));
    }
    let damaged = if damaged > 0 {
        format!(", {damaged} damaged")
    } else {
        String::new()
    };
    // The totals stay the last line, for scripts.
    println!("{}", cost(&Summary::of(store, jobs)?));
    println!(
        "{} jobs: {done} done, {incomplete} incomplete, {failed} failed, {fresh} not started{damaged} ({})",
        jobs.len(),
        cfg_path.display()
    );
    Ok(())
}

/// The estimated cost of the unfinished jobs, from the finished jobs' times per kind.
fn cost(s: &Summary) -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let left = s.total - s.done;
    if left == 0 {
        return "cost: nothing left to run".into();
    }
    let measured: usize = s.times.values().map(|t| t.jobs).sum();
    if measured == 0 {
        return format!(
            "cost: {left} jobs left; unknown until jobs have finished (`ffw bench` gives \
             training rates)"
        );
    }
    let mut line = format!(
        "cost: {left} jobs left, ~{:.1} core-hours (~{} on this machine's {cores} cores), from {measured} finished jobs' times",
        s.core_secs_left / 3600.0,
        ffw_sweep::status::duration(s.core_secs_left / cores as f64),
    );
    if s.unknown > 0 {
        line += &format!(
            "; {} jobs of kinds with no finished job yet are not counted (`ffw bench` gives \
             training rates)",
            s.unknown
        );
    }
    line
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
    if let Err(e) = crate::report::report(out, false) {
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

/// MPI of a sweep, started before the thread pool exists: the pool's size is this rank's
/// share of its node, which only MPI knows.
#[cfg(feature = "mpi")]
pub struct Mpi {
    universe: mpi::environment::Universe,
    /// The world ranks on this rank's node.
    node_ranks: Vec<i32>,
    /// MPI lets threads call it concurrently, so rank 0 can run jobs while it coordinates.
    rank0_works: bool,
}

/// No MPI in this build.
#[cfg(not(feature = "mpi"))]
pub enum Mpi {}

#[cfg(feature = "mpi")]
pub fn start_mpi() -> Result<Option<Mpi>> {
    // Multiple: rank 0 coordinates in a thread of its own while it runs jobs. An MPI that
    // offers less (Serialized at least: MPI is initialised here, on the main thread, and
    // called from the pool thread the command runs on) leaves rank 0 coordinating only.
    let (universe, provided) = mpi::initialize_with_threading(mpi::Threading::Multiple)
        .ok_or_else(|| anyhow::anyhow!("MPI was already initialised"))?;
    tracing::debug!(?provided, "MPI threading");
    let node_ranks = ffw_sweep::distributed::node_ranks(&universe.world());
    Ok(Some(Mpi {
        universe,
        node_ranks,
        rank0_works: provided >= mpi::Threading::Multiple,
    }))
}

#[cfg(not(feature = "mpi"))]
pub fn start_mpi() -> Result<Option<Mpi>> {
    Ok(None)
}

impl Mpi {
    /// Threads for each rank where several share a node: its cores split evenly; none for
    /// a single rank, which takes every core.
    pub fn thread_share(&self) -> Option<usize> {
        #[cfg(feature = "mpi")]
        {
            use mpi::traits::Communicator;
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            ffw_placement::thread_share(
                cores,
                self.node_ranks.len(),
                self.universe.world().size() as usize,
            )
        }
        #[cfg(not(feature = "mpi"))]
        match *self {}
    }
}

pub fn sweep(args: SweepArgs, mpi: Option<Mpi>) -> Result<()> {
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
    let manifest = SweepManifest::new(&cfg)?;
    distribute(&store, &manifest, jobs, retries, mpi, &args, &out)
}

#[cfg(feature = "mpi")]
fn distribute(
    store: &Store,
    manifest: &SweepManifest,
    jobs: Vec<ffw_sweep::grid::Job>,
    retries: usize,
    mpi: Option<Mpi>,
    args: &SweepArgs,
    out: &Path,
) -> Result<()> {
    let (choice, workers_per_gpu) = (args.device, manifest.config.sweep.workers_per_gpu);
    use mpi::traits::Communicator;
    let mpi = mpi.ok_or_else(|| anyhow::anyhow!("MPI was not started"))?;
    let world = mpi.universe.world();
    // Every rank refuses a world too small for some job, before any starts working.
    let coordinators: &[i32] = if mpi.rank0_works { &[] } else { &[0] };
    // A world of one runs every job itself.
    let workers = (world.size() as usize - coordinators.len()).max(1);
    manifest.config.check_workers(workers)?;
    // Rank 0 writes for the whole world, so it alone holds the directory's lock.
    let _coordinator = if world.rank() == 0 {
        let lock = ffw_sweep::lock::acquire(out)?;
        manifest.write(store)?;
        Some((
            lock,
            ffw_sweep::status::log_every(out, &jobs, args.status_every),
        ))
    } else {
        None
    };
    if world.size() == 1 {
        let device = ffw_placement::open(choice, Worker::SOLO, workers_per_gpu)?;
        return finish(run_local(store, jobs, retries, &device)?, out);
    }
    // Each worker binds its node's GPUs in turn (rank 0 too, where it runs jobs).
    let device = match Worker::on_node(&mpi.node_ranks, world.rank(), coordinators) {
        Some(worker) => ffw_placement::open(choice, worker, workers_per_gpu),
        None => Ok(candle_core::Device::Cpu),
    };
    // Every rank or none: a rank that stopped here would leave the others waiting for it.
    if !ffw_sweep::distributed::all_agree(&world, device.is_ok()) {
        return Err(match device {
            Err(e) => anyhow::Error::new(e).context(format!("rank {}", world.rank())),
            Ok(_) => anyhow::anyhow!("another rank could not open its device (see its error)"),
        });
    }
    let device = device?;
    tracing::info!(
        rank = world.rank(),
        threads = rayon::current_num_threads(),
        device = %ffw_placement::describe(&device),
        "rank ready"
    );
    if world.rank() == 0 && !mpi.rank0_works {
        tracing::warn!("MPI offers no MPI_THREAD_MULTIPLE: rank 0 only coordinates");
    }
    let run = ffw_sweep::distributed::run;
    match run(&world, store, jobs, retries, &device, mpi.rank0_works)? {
        Some(counts) => finish(counts, out),
        None => Ok(()),
    }
}

#[cfg(not(feature = "mpi"))]
fn distribute(
    store: &Store,
    manifest: &SweepManifest,
    jobs: Vec<ffw_sweep::grid::Job>,
    retries: usize,
    _mpi: Option<Mpi>,
    args: &SweepArgs,
    out: &Path,
) -> Result<()> {
    let (choice, workers_per_gpu) = (args.device, manifest.config.sweep.workers_per_gpu);
    // One process has no ranks to share a job with.
    manifest.config.check_workers(1)?;
    let device = ffw_placement::open(choice, Worker::SOLO, workers_per_gpu)?;
    let _lock = ffw_sweep::lock::acquire(out)?;
    manifest.write(store)?;
    let _status = ffw_sweep::status::log_every(out, &jobs, args.status_every);
    finish(run_local(store, jobs, retries, &device)?, out)
}
