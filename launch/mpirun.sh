#!/usr/bin/env bash
# Run a sweep on the ranks of one or more machines with Open MPI.
#
#   launch/mpirun.sh configs/paper.toml 8            # 8 ranks, each running jobs
#   HOSTFILE=hosts launch/mpirun.sh configs/paper.toml 32
#
# Rank 0 also hands out jobs and writes the journal (from a thread of its own); every rank
# runs jobs. Give each node one rank per GPU: rank i of a node binds GPU i % GPUs (build with
# `--features mpi,cuda`; more ranks per GPU need [sweep] workers_per_gpu, docs/GPU.md).
# CPU-only ranks split the node's cores between them (override with `ffw --threads N`).
# The output directory (the config's `output`, default results/<config name>) must be on a file
# system every rank can read: vanilla checkpoints are shared through it.
# Rerunning the same command resumes: finished jobs are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: launch/mpirun.sh CONFIG [RANKS]}
ranks=${2:-$(nproc)}
cargo build --release --features mpi --bin ffw
args=(-np "$ranks" --oversubscribe)
[ -n "${HOSTFILE:-}" ] && args+=(--hostfile "$HOSTFILE")
[ "$(id -u)" = 0 ] && args+=(--allow-run-as-root)
exec mpirun "${args[@]}" ./target/release/ffw sweep "$config"
