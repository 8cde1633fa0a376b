//! The sweep over MPI ranks: rank 0 coordinates (hands out ready jobs on request, writes the
//! journal), every other rank runs jobs. Messages are small JSON documents; job data never
//! travels, since every rank expands the same grid and reads the shared file system.
//!
//! With `ranks_per_job = k` the workers form fixed gangs of k consecutive ranks, formed once
//! at the start: the gang's first rank is the coordinator's worker, passes each vanilla job
//! on to the rest of its gang, trains it with them data-parallel, and alone writes files and
//! reports; FFW and magnitude jobs it runs alone.
use candle_core::Device;
use ffw_placement::mpi_backend::MpiCollective;
use ffw_placement::{Collective, Solo};
use mpi::topology::{Color, SimpleCommunicator};
use mpi::traits::*;
use serde::{Deserialize, Serialize};

use crate::coordinator::Coordinator;
use crate::error::Result;
use crate::exec::{run_job, Outcome};
use crate::grid::{Job, JobSpec};
use crate::scheduler::Counts;
use crate::store::Store;

#[derive(Serialize, Deserialize, Debug)]
enum ToWorker {
    Run(String),
    Stop,
}

#[derive(Serialize, Deserialize, Debug)]
enum ToCoordinator {
    Ready,
    Done { job: String, outcome: Outcome },
}

/// Sends `msg` to `rank` of `comm` (the world, or a gang).
fn send<T: Serialize>(comm: &SimpleCommunicator, rank: i32, msg: &T) {
    let bytes = serde_json::to_vec(msg).expect("messages serialise");
    comm.process_at_rank(rank).send(&bytes[..]);
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

/// A worker rank's gang: its own communicator for messages and another for the job's
/// collectives, so that the two never mix.
struct Gang {
    messages: SimpleCommunicator,
    group: MpiCollective,
}

/// Runs the sweep on every rank, the workers in gangs of `ranks_per_job` (which must divide
/// their number: [`crate::studies::SweepSection::gangs`]); returns the final counts on rank 0
/// and `None` elsewhere.
pub fn run(
    world: &SimpleCommunicator,
    store: &Store,
    jobs: Vec<Job>,
    retries: usize,
    device: &Device,
    ranks_per_job: usize,
) -> Result<Option<Counts>> {
    let k = ranks_per_job.max(1) as i32;
    let color = match world.rank() {
        0 => Color::undefined(),
        r => Color::with_value((r - 1) / k),
    };
    let gang = world.split_by_color(color).map(|messages| Gang {
        group: MpiCollective::new(messages.duplicate()),
        messages,
    });
    match gang {
        None => coordinate(world, store, jobs, retries, (world.size() - 1) / k).map(Some),
        Some(gang) if gang.messages.rank() == 0 => {
            work(world, store, &jobs, device, &gang);
            Ok(None)
        }
        Some(gang) => {
            follow(&gang, store, &jobs, device);
            Ok(None)
        }
    }
}

/// Rank 0: hands ready jobs to the `workers` (the gangs' first ranks) as they ask.
fn coordinate(
    world: &SimpleCommunicator,
    store: &Store,
    jobs: Vec<Job>,
    retries: usize,
    workers: i32,
) -> Result<Counts> {
    let mut coord = Coordinator::new(store, jobs, retries)?;
    let mut idle: Vec<i32> = Vec::new();
    let mut running = 0usize;
    let mut stopped = 0;
    while stopped < workers {
        // Hand out what is ready; once nothing runs and nothing is ready, the sweep is over.
        // After a stop request nothing more is handed out: the running jobs end (they are
        // interrupted too, when the signal reached their ranks) and everyone stops.
        while let Some(&w) = idle.last().filter(|_| !ffw_surgery::interrupt::requested()) {
            if let Some(job) = coord.next(w)? {
                send(world, w, &ToWorker::Run(job.id));
                idle.pop();
                running += 1;
            } else {
                break;
            }
        }
        if running == 0 && idle.len() as i32 + stopped == workers {
            for w in idle.drain(..) {
                send(world, w, &ToWorker::Stop);
                stopped += 1;
            }
            continue;
        }
        let (bytes, status) = world.any_process().receive_vec::<u8>();
        let from = status.source_rank();
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

/// Passes `msg` on to the gang's other ranks.
fn tell_gang(gang: &Gang, msg: &ToWorker) {
    for r in 1..gang.messages.size() {
        send(&gang.messages, r, msg);
    }
}

/// A gang's first rank: asks the coordinator for jobs and runs them, vanilla jobs with its
/// gang.
fn work(world: &SimpleCommunicator, store: &Store, jobs: &[Job], device: &Device, gang: &Gang) {
    send(world, 0, &ToCoordinator::Ready);
    loop {
        let (bytes, _) = world.process_at_rank(0).receive_vec::<u8>();
        match serde_json::from_slice::<ToWorker>(&bytes) {
            Ok(ToWorker::Run(id)) => {
                let outcome = match jobs.iter().find(|j| j.id == id) {
                    Some(job)
                        if gang.group.size() > 1 && matches!(job.spec, JobSpec::Vanilla(_)) =>
                    {
                        tell_gang(gang, &ToWorker::Run(id.clone()));
                        run_job(store, job, jobs, device, &gang.group)
                    }
                    Some(job) => run_job(store, job, jobs, device, &Solo),
                    None => Outcome::Failed {
                        error: format!(
                            "rank {} does not know job {id}: are all ranks reading the same \
                             config?",
                            world.rank()
                        ),
                    },
                };
                send(world, 0, &ToCoordinator::Done { job: id, outcome });
            }
            Ok(ToWorker::Stop) => break,
            Err(e) => {
                tracing::error!(error = %e, "unreadable message from the coordinator");
                break;
            }
        }
    }
    tell_gang(gang, &ToWorker::Stop);
}

/// A gang's other ranks: train the vanilla jobs their first rank passes on, until it stops.
/// Their outcome is the first rank's to report (the group agrees on interruptions; an error
/// on one rank alone, such as an unreadable file, is not caught and stalls the gang).
fn follow(gang: &Gang, store: &Store, jobs: &[Job], device: &Device) {
    loop {
        let (bytes, _) = gang.messages.process_at_rank(0).receive_vec::<u8>();
        match serde_json::from_slice::<ToWorker>(&bytes) {
            Ok(ToWorker::Run(id)) => {
                if let Some(job) = jobs.iter().find(|j| j.id == id) {
                    run_job(store, job, jobs, device, &gang.group);
                }
            }
            Ok(ToWorker::Stop) => break,
            Err(e) => {
                tracing::error!(error = %e, "unreadable message from the gang's first rank");
                break;
            }
        }
    }
}
