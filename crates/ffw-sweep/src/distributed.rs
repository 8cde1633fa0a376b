//! The sweep over MPI ranks: rank 0 coordinates (hands out ready jobs, writes the journal)
//! and, where MPI allows threads, also runs jobs like every other rank. Messages are small
//! JSON documents on their own communicator; job data never travels, since every rank
//! expands the same grid and reads the shared file system.
//!
//! A job may need several ranks (`ranks_per_job`): the coordinator hands it out once that
//! many workers are idle, naming them all; they form a communicator for that job alone
//! (`MPI_Comm_create_group`, only they take part), run it data-parallel, and its first rank
//! reports. Jobs of one and of several ranks mix freely: a job that does not fit the idle
//! workers waits while smaller ready ones go ahead, and once every worker is idle any job
//! fits (none needs more ranks than there are workers: [`crate::config::RunConfig::check_workers`]),
//! so the sweep cannot deadlock.
use std::time::Duration;

use candle_core::Device;
use ffw_placement::Solo;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use serde::{Deserialize, Serialize};

use crate::coordinator::Coordinator;
use crate::error::{Result, SweepError};
use crate::exec::{run_job, Outcome};
use crate::grid::Job;
use crate::scheduler::Counts;
use crate::store::Store;

/// Tags keep the two directions apart on rank 0, whose coordinator and worker share a rank.
const TO_COORDINATOR: i32 = 1;
const TO_WORKER: i32 = 2;

#[derive(Serialize, Deserialize, Debug)]
enum ToWorker {
    /// Run `job` with the world ranks `ranks` (in group order; the first reports).
    Run {
        job: String,
        ranks: Vec<i32>,
    },
    Stop,
}

#[derive(Serialize, Deserialize, Debug)]
enum ToCoordinator {
    /// Idle: ready for a job (also what a job's other ranks say when it ends).
    Ready,
    Done {
        job: String,
        outcome: Outcome,
    },
}

fn send<T: Serialize>(comm: &SimpleCommunicator, rank: i32, tag: i32, msg: &T) {
    let bytes = serde_json::to_vec(msg).expect("messages serialise");
    comm.process_at_rank(rank).send_with_tag(&bytes[..], tag);
}

/// The world ranks sharing this rank's node (MPI shared-memory split), for binding GPUs and
/// sharing cores ([`ffw_placement::binding`]).
pub fn node_ranks(world: &SimpleCommunicator) -> Vec<i32> {
    let local = world.split_shared(world.rank());
    let mut ranks = vec![0i32; local.size() as usize];
    local.all_gather_into(&world.rank(), &mut ranks[..]);
    ranks
}

/// Whether `ok` holds on every rank (all ranks call it together).
pub fn all_agree(world: &SimpleCommunicator, ok: bool) -> bool {
    let mut all = 0i32;
    world.all_reduce_into(
        &i32::from(ok),
        &mut all,
        mpi::collective::SystemOperation::min(),
    );
    all == 1
}

/// The communicator of the coordinator's messages, lent to rank 0's coordinator thread.
struct Control<'a>(&'a SimpleCommunicator);

// SAFETY: it crosses to another thread only with `rank0_works`, where MPI was initialised
// with MPI_THREAD_MULTIPLE: then any thread may call MPI on any communicator handle.
unsafe impl Send for Control<'_> {}

/// Runs the sweep on every rank; returns the final counts on rank 0 and `None` elsewhere.
/// With `rank0_works` (MPI initialised with `MPI_THREAD_MULTIPLE`) rank 0 coordinates in a
/// thread of its own and runs jobs too; otherwise it only coordinates.
pub fn run(
    world: &SimpleCommunicator,
    store: &Store,
    jobs: Vec<Job>,
    retries: usize,
    device: &Device,
    rank0_works: bool,
) -> Result<Option<Counts>> {
    let control = world.duplicate();
    let workers: Vec<i32> = (i32::from(!rank0_works)..world.size()).collect();
    if world.rank() != 0 {
        work(world, &control, store, &jobs, device);
        return Ok(None);
    }
    if !rank0_works {
        return coordinate(&control, store, jobs, retries, workers).map(Some);
    }
    let (lent, all) = (Control(&control), jobs.clone());
    std::thread::scope(|s| {
        let counts = s.spawn(move || {
            let lent = lent;
            crate::joblog::keep_this_thread_out();
            coordinate(lent.0, store, all, retries, workers)
        });
        work(world, &control, store, &jobs, device);
        counts.join().map_err(|_| SweepError::Job {
            job: "-".into(),
            reason: "the coordinator panicked".into(),
        })?
    })
    .map(Some)
}

/// Rank 0: hands ready jobs to idle `workers`, as many at once as each job needs.
fn coordinate(
    control: &SimpleCommunicator,
    store: &Store,
    jobs: Vec<Job>,
    retries: usize,
    workers: Vec<i32>,
) -> Result<Counts> {
    let mut coord = Coordinator::new(store, jobs, retries)?;
    let mut idle: Vec<i32> = Vec::new();
    let mut running = 0usize;
    let mut stopped = 0;
    while stopped < workers.len() {
        // After a stop request nothing more is handed out: the running jobs end (they are
        // interrupted too, when the signal reached their ranks) and everyone stops.
        while !ffw_surgery::interrupt::requested() {
            let Some(job) = coord.next(idle.len()) else {
                break;
            };
            // The lowest idle ranks: a job's ranks then tend to share a node.
            idle.sort_unstable();
            let ranks: Vec<i32> = idle.drain(..job.ranks).collect();
            for &r in &ranks {
                let run = ToWorker::Run {
                    job: job.id.clone(),
                    ranks: ranks.clone(),
                };
                send(control, r, TO_WORKER, &run);
            }
            coord.started(&job, ranks[0])?;
            running += 1;
        }
        // Once nothing runs and nothing fits every idle worker, the sweep is over.
        if running == 0 && idle.len() + stopped == workers.len() {
            for w in idle.drain(..) {
                send(control, w, TO_WORKER, &ToWorker::Stop);
                stopped += 1;
            }
            continue;
        }
        let (bytes, from) = receive(control);
        match serde_json::from_slice::<ToCoordinator>(&bytes) {
            Ok(ToCoordinator::Ready) => idle.push(from),
            Ok(ToCoordinator::Done { job, outcome }) => {
                if outcome == Outcome::Interrupted {
                    // A preempted rank means the allocation is ending: stop the sweep.
                    ffw_surgery::interrupt::request();
                }
                coord.finished(&job, from, outcome)?;
                running -= 1;
                idle.push(from);
            }
            Err(e) => tracing::error!(rank = from, error = %e, "unreadable message"),
        }
    }
    Ok(coord.close())
}

/// The next message to the coordinator and its sender. Polls rather than blocks: a blocked
/// MPI receive spins a core, which rank 0's own jobs need.
fn receive(control: &SimpleCommunicator) -> (Vec<u8>, i32) {
    loop {
        if let Some(status) = control
            .any_process()
            .immediate_probe_with_tag(TO_COORDINATOR)
        {
            let from = status.source_rank();
            let (bytes, _) = control
                .process_at_rank(from)
                .receive_vec_with_tag::<u8>(TO_COORDINATOR);
            return (bytes, from);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A worker rank: asks the coordinator for jobs and runs them, alone or with the ranks the
/// coordinator names.
fn work(
    world: &SimpleCommunicator,
    control: &SimpleCommunicator,
    store: &Store,
    jobs: &[Job],
    device: &Device,
) {
    let solo: ffw_placement::Group = std::sync::Arc::new(Solo);
    send(control, 0, TO_COORDINATOR, &ToCoordinator::Ready);
    loop {
        let (bytes, _) = control
            .process_at_rank(0)
            .receive_vec_with_tag::<u8>(TO_WORKER);
        let (id, ranks) = match serde_json::from_slice::<ToWorker>(&bytes) {
            Ok(ToWorker::Run { job, ranks }) => (job, ranks),
            Ok(ToWorker::Stop) => break,
            Err(e) => {
                tracing::error!(error = %e, "unreadable message from the coordinator");
                break;
            }
        };
        let outcome = match jobs.iter().find(|j| j.id == id) {
            Some(job) if ranks.len() > 1 => run_on(world, &ranks, store, job, jobs, device),
            Some(job) => run_job(store, job, jobs, device, &solo),
            None => Outcome::Failed {
                error: format!(
                    "rank {} does not know job {id}: are all ranks reading the same config?",
                    world.rank()
                ),
            },
        };
        let reply = if ranks.first() == Some(&world.rank()) {
            ToCoordinator::Done { job: id, outcome }
        } else {
            ToCoordinator::Ready
        };
        send(control, 0, TO_COORDINATOR, &reply);
    }
}

/// Runs `job` data-parallel on the world ranks `ranks` (this one among them).
fn run_on(
    world: &SimpleCommunicator,
    ranks: &[i32],
    store: &Store,
    job: &Job,
    jobs: &[Job],
    device: &Device,
) -> Outcome {
    let members = world.group().include(ranks);
    // Only the job's ranks take part; the tag keeps concurrent creations on a rank apart.
    let Some(comm) = world.split_by_subgroup_with_tag(&members, TO_WORKER) else {
        return Outcome::Failed {
            error: format!("rank {} is not among {ranks:?}", world.rank()),
        };
    };
    match ffw_placement::mpi_backend::group_on(comm, device) {
        Ok(group) => run_job(store, job, jobs, device, &group),
        // Every rank of the job meets the same device kind and build, so all fail here alike.
        Err(e) => Outcome::Failed {
            error: e.to_string(),
        },
    }
}
