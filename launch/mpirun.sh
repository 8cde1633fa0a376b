#!/usr/bin/env bash
# Run a sweep on the ranks of one or more machines with Open MPI.
#
#   launch/mpirun.sh configs/paper.toml 9            # 9 ranks: 1 coordinator + 8 workers
#   HOSTFILE=hosts launch/mpirun.sh configs/paper.toml 33
#
# Rank 0 only hands out jobs and writes the journal; every other rank runs jobs. Give each
# node (GPUs per node + 1) ranks on the first node and (GPUs per node) on the others: worker i
# of a node (rank 0 not counted) binds GPU i % GPUs (build with `--features mpi,cuda`; more
# workers per GPU need [sweep] workers_per_gpu, docs/GPU.md). CPU-only workers split the
# node's cores between them (override with `ffw --threads N`).
# The output directory (the config's `output`, default results/<config name>) must be on a file
# system every rank can read: vanilla checkpoints are shared through it.
# Rerunning the same command resumes: finished jobs are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: launch/mpirun.sh CONFIG [RANKS]}
ranks=${2:-$(( $(nproc) + 1 ))}
cargo build --release --features mpi --bin ffw
args=(-np "$ranks" --oversubscribe)
[ -n "${HOSTFILE:-}" ] && args+=(--hostfile "$HOSTFILE")
[ "$(id -u)" = 0 ] && args+=(--allow-run-as-root)
exec mpirun "${args[@]}" ./target/release/ffw sweep "$config"
