#!/usr/bin/env bash
# Proves that the CUDA build (features cuda + nccl) compiles on a machine without a GPU or a
# CUDA install: the CUDA 13.0 toolkit comes as wheels from PyPI, libcuda.so (which only the
# driver ships) as a generated stub to link against. Run it when GPU code changes; it is too
# slow for every CI run (the release build takes ~14 min on 2 cores).
#
#   launch/check-cuda-build.sh          # cargo check (compiles every crate, links nothing)
#   launch/check-cuda-build.sh --full   # then the release binary, linked against the stub
#
# Everything lands in target-cuda/ (FFW_CUDA_TARGET): the toolkit and the cargo target dir.
set -euo pipefail
cd "$(dirname "$0")/.."
full=0
[ "${1:-}" = --full ] && full=1
out=${FFW_CUDA_TARGET:-$PWD/target-cuda}
sdk=$out/cuda-sdk
cuda=$sdk/nvidia/cu13
features=ffw-cli/cuda,ffw-cli/nccl

step() { echo "== $* ($(date -u +%T))"; }

if [ ! -x "$cuda/bin/nvcc" ]; then
  step "CUDA 13.0 wheels into $sdk"
  # crt and nvvm pinned: left free, pip pulls versions newer than this nvcc.
  python3 -m pip install --quiet --disable-pip-version-check --target "$sdk" \
    "cuda-toolkit[nvcc,cccl,cudart,cublas,curand,nvrtc]==13.0.2" \
    nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-nccl-cu13==2.30.7
fi

# The wheels ship only versioned libraries; the linker looks for the unversioned names.
for lib in cudart cublas cublasLt nvrtc curand; do
  so=$(cd "$cuda/lib" && ls "lib$lib.so."* | head -1)
  ln -sf "$so" "$cuda/lib/lib$lib.so"
done
ln -sf "$(ls "$sdk"/nvidia/nccl/lib/libnccl.so.* | head -1)" "$cuda/lib/libnccl.so"

# libcuda.so: one empty function per driver symbol cudarc binds, enough to link (never run).
cudarc=$(cargo metadata --format-version 1 --features "$features" |
  python3 -c 'import json, os, sys
print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"]
           if p["name"] == "cudarc"))')
mkdir -p "$cuda/lib/stubs"
grep -ohE 'pub (unsafe )?fn cu[A-Za-z0-9_]+' "$cudarc/src/driver/sys/mod.rs" |
  sed -E 's/.* fn //' | sort -u | sed 's/.*/void &(void) {}/' >"$out/libcuda-stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda/lib/stubs/libcuda.so" "$out/libcuda-stub.c"
echo "libcuda stub: $(wc -l <"$out/libcuda-stub.c") symbols from $cudarc"

export CUDA_HOME=$cuda CUDA_PATH=$cuda PATH=$cuda/bin:$PATH CUDA_COMPUTE_CAP=90
export CARGO_TARGET_DIR=$out
nvcc --version | tail -2

step "cargo check --release --workspace --features $features"
start=$SECONDS
cargo check --release --workspace --features "$features"
echo "check: $((SECONDS - start)) s"

if [ "$full" = 1 ]; then
  step "cargo build --release --workspace --features $features"
  start=$SECONDS
  cargo build --release --workspace --features "$features"
  echo "build: $((SECONDS - start)) s"
  # Linked against the driver, cuBLAS, NCCL: what a GPU node must provide at run time.
  ldd "$CARGO_TARGET_DIR/release/ffw" | grep -E 'cuda|cublas|nccl|nvrtc|curand' || true
fi
