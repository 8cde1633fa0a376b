//! Ranks → workers → GPUs, and each rank's share of its node's cores. Pure functions of the
//! layout MPI reports, so every launcher's layout is a unit test.
use crate::error::{host, PlacementError, Result};

/// Where one worker sits among the workers (ranks that run jobs) of its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Worker {
    /// 0-based, in world-rank order.
    pub index: usize,
    /// Workers on the node.
    pub count: usize,
}

impl Worker {
    /// A process that runs every job itself (`ffw run`, a one-rank sweep).
    pub const SOLO: Worker = Worker { index: 0, count: 1 };

    /// World rank `me` among the world ranks sharing its node (`node_ranks`, any order), not
    /// counting the ranks that only coordinate; none if `me` is one of those.
    pub fn on_node(node_ranks: &[i32], me: i32, coordinators: &[i32]) -> Option<Worker> {
        let mut workers: Vec<i32> = node_ranks
            .iter()
            .copied()
            .filter(|r| !coordinators.contains(r))
            .collect();
        workers.sort_unstable();
        let index = workers.iter().position(|&r| r == me)?;
        Some(Worker {
            index,
            count: workers.len(),
        })
    }
}

/// The GPU a worker binds: `index % n_gpus`, so a node's workers spread over its GPUs
/// whatever rank the coordinator has. Refused where some GPU would carry more than
/// `workers_per_gpu` workers.
pub fn gpu_of(worker: Worker, n_gpus: usize, workers_per_gpu: usize) -> Result<usize> {
    debug_assert!(n_gpus > 0);
    if worker.count > n_gpus * workers_per_gpu.max(1) {
        return Err(PlacementError::Oversubscribed {
            host: host(),
            workers: worker.count,
            gpus: n_gpus,
            per_gpu: workers_per_gpu.max(1),
        });
    }
    Ok(worker.index % n_gpus)
}

/// Threads for each of `ranks_on_node` ranks sharing `cores`: an even split (a coordinator
/// needs almost none); none for a one-rank world, which takes every core.
pub fn thread_share(cores: usize, ranks_on_node: usize, world_size: usize) -> Option<usize> {
    (world_size > 1).then(|| (cores / ranks_on_node.max(1)).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GPUs of every worker of a layout: `nodes[n]` lists node n's world ranks; rank 0
    /// only coordinates (an MPI without MPI_THREAD_MULTIPLE).
    fn gpus(nodes: &[Vec<i32>], n_gpus: usize, per_gpu: usize) -> Vec<(i32, usize)> {
        gpus_with(nodes, n_gpus, per_gpu, &[0])
    }

    fn gpus_with(
        nodes: &[Vec<i32>],
        n_gpus: usize,
        per_gpu: usize,
        coordinators: &[i32],
    ) -> Vec<(i32, usize)> {
        let mut out = Vec::new();
        for node in nodes {
            for &r in node {
                if let Some(w) = Worker::on_node(node, r, coordinators) {
                    out.push((r, gpu_of(w, n_gpus, per_gpu).unwrap()));
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// launch/slurm.sbatch: 2 nodes, 9 tasks, 5 on the first (the coordinator and four
    /// workers) and 4 on the second, 4 GPUs each. By node-local rank the first node's last
    /// worker asked for GPU 4, which does not exist, and GPU 0 idled under the coordinator.
    #[test]
    fn slurm_layout_binds_every_gpu_once() {
        let nodes = [vec![0, 1, 2, 3, 4], vec![5, 6, 7, 8]];
        let got = gpus(&nodes, 4, 1);
        let want = [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 3),
            (5, 0),
            (6, 1),
            (7, 2),
            (8, 3),
        ];
        assert_eq!(got, want);
        // Every GPU of each node carries exactly one worker.
        for node in 0..2 {
            let mut on = got[node * 4..node * 4 + 4]
                .iter()
                .map(|&(_, g)| g)
                .collect::<Vec<_>>();
            on.sort_unstable();
            assert_eq!(on, [0, 1, 2, 3]);
        }
    }

    /// launch/slurm.sbatch where rank 0 runs jobs too: 2 nodes × 4 tasks, every rank a worker
    /// with a GPU of its own.
    #[test]
    fn slurm_layout_with_rank0_working_binds_every_gpu_once() {
        let nodes = [vec![0, 1, 2, 3], vec![4, 5, 6, 7]];
        let got = gpus_with(&nodes, 4, 1, &[]);
        let want: Vec<(i32, usize)> = (0..8).map(|r| (r, r as usize % 4)).collect();
        assert_eq!(got, want);
    }

    /// `mpirun --map-by node` deals ranks round robin: the coordinator's node has a worker
    /// fewer, and ranks are not contiguous.
    #[test]
    fn round_robin_mpirun_layout() {
        let nodes = [vec![0, 2, 4, 6], vec![1, 3, 5, 7]];
        let got = gpus(&nodes, 4, 1);
        let want = [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (6, 2), (7, 3)];
        assert_eq!(got, want);
        // The node-local worker counts: three beside the coordinator, four on the other node.
        assert_eq!(
            Worker::on_node(&nodes[0], 6, &[0]),
            Some(Worker { index: 2, count: 3 })
        );
        assert_eq!(Worker::on_node(&nodes[0], 0, &[0]), None);
    }

    /// One node, `mpirun -np 9` with 4 GPUs and workers_per_gpu = 2: two workers per GPU;
    /// with 1 the same launch is refused rather than silently doubling up.
    #[test]
    fn workers_per_gpu_packs_and_bounds_a_node() {
        let node = vec![(0..9).collect::<Vec<i32>>()];
        let got = gpus(&node, 4, 2);
        let per_gpu = (0..4)
            .map(|g| got.iter().filter(|&&(_, x)| x == g).count())
            .collect::<Vec<_>>();
        assert_eq!(per_gpu, [2, 2, 2, 2]);
        let w = Worker::on_node(&node[0], 8, &[0]).unwrap();
        let err = gpu_of(w, 4, 1).unwrap_err().to_string();
        assert!(err.contains("8 workers share 4 GPU(s)"), "{err}");
        assert!(err.contains("at most 4 workers per node"), "{err}");
        // A single process binds GPU 0.
        assert_eq!(gpu_of(Worker::SOLO, 2, 1).unwrap(), 0);
    }

    #[test]
    fn threads_split_a_node_evenly() {
        assert_eq!(thread_share(16, 5, 9), Some(3));
        assert_eq!(thread_share(2, 3, 3), Some(1));
        assert_eq!(thread_share(16, 1, 1), None);
    }
}
