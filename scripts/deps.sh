#!/usr/bin/env bash
# deps.sh [run|test]: install the Debian 12 packages bgfm needs.
#   run   (make deps):      what building and running bgfm needs, `make demo` included:
#                           compiler, MPI, parallel HDF5, BLAS/LAPACK, libyaml, NIfTI, ISA-L,
#                           zlib, the mricron atlases of jobs/demo.yaml, gnuplot for plots.
#   test  (make deps-test): what the tests, sanitizers, fuzzing and benchmarks need on top:
#                           cmocka, the Python references (numpy, scipy, nibabel, h5py,
#                           PyTorch, nitime, nipy), HDF5 and ISA-L tools, a local Slurm
#                           (slurmctld, slurmd, munge, PMIx), clang + libFuzzer, valgrind,
#                           headless Chromium (renders the run report page in its test).
# As root it installs what is missing non-interactively; otherwise it prints the line and
# exits 1.
set -euo pipefail
RUN=(build-essential pkg-config make
     libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
     libopenblas-dev liblapacke-dev libyaml-dev libnifti2-dev libisal-dev zlib1g-dev
     mricron-data gnuplot-nox)
TEST=(libcmocka-dev hdf5-tools isal
      python3-numpy python3-scipy python3-nibabel python3-h5py python3-torch
      python3-nitime python3-nipy
      slurmctld slurmd slurm-client munge libpmix-dev
      clang libclang-rt-14-dev valgrind chromium)
case "${1:-run}" in
  run) what=run; PKGS=("${RUN[@]}") ;;
  test) what=test; PKGS=("${TEST[@]}") ;;
  *) echo "usage: scripts/deps.sh [run|test]" >&2; exit 2 ;;
esac
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps ($what): all ${#PKGS[@]} packages present"
  exit 0
fi
echo "deps ($what): missing: ${missing[*]}"
if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "deps ($what): run as root:  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
