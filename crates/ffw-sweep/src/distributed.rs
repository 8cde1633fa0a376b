//! The sweep over MPI ranks: rank 0 coordinates (hands out ready jobs on request, writes the
//! journal), every other rank runs jobs. Messages are small JSON documents; job data never
//! travels, since every rank expands the same grid and reads the shared file system.
use candle_core::Device;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use serde::{Deserialize, Serialize};

use crate::coordinator::Coordinator;
use crate::error::Result;
use crate::exec::{run_job, Outcome};
use crate::grid::Job;
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

fn send<T: Serialize>(world: &SimpleCommunicator, rank: i32, msg: &T) {
    let bytes = serde_json::to_vec(msg).expect("messages serialise");
    world.process_at_rank(rank).send(&bytes[..]);
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

/// Runs the sweep on every rank; returns the final counts on rank 0 and `None` elsewhere.
pub fn run(
    world: &SimpleCommunicator,
    store: &Store,
    jobs: Vec<Job>,
    retries: usize,
    device: &Device,
) -> Result<Option<Counts>> {
    if world.rank() == 0 {
        coordinate(world, store, jobs, retries).map(Some)
    } else {
        work(world, store, &jobs, device);
        Ok(None)
    }
}

fn coordinate(
    world: &SimpleCommunicator,
    store: &Store,
    jobs: Vec<Job>,
    retries: usize,
) -> Result<Counts> {
    let mut coord = Coordinator::new(store, jobs, retries)?;
    let mut idle: Vec<i32> = Vec::new();
    let mut running = 0usize;
    let mut stopped = 0;
    let workers = world.size() - 1;
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

fn work(world: &SimpleCommunicator, store: &Store, jobs: &[Job], device: &Device) {
    send(world, 0, &ToCoordinator::Ready);
    loop {
        let (bytes, _) = world.process_at_rank(0).receive_vec::<u8>();
        match serde_json::from_slice::<ToWorker>(&bytes) {
            Ok(ToWorker::Run(id)) => {
                let outcome = match jobs.iter().find(|j| j.id == id) {
                    Some(job) => run_job(store, job, jobs, device),
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
}
