#!/usr/bin/env bash
# deps.sh: install the Debian 12 packages bgfm needs (build, tests, demo, Slurm tests).
# As root it installs what is missing non-interactively; otherwise it prints the line.
set -euo pipefail
PKGS=(build-essential pkg-config make
      libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools
      libopenblas-dev liblapacke-dev libyaml-dev libnifti2-dev libisal-dev isal zlib1g-dev
      libcmocka-dev
      python3-numpy python3-scipy python3-nibabel python3-h5py python3-torch
      mricron-data python3-nitime python3-nipy gnuplot-nox
      slurmctld slurmd slurm-client munge libpmix-dev
      clang libclang-rt-14-dev valgrind)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "deps: missing: ${missing[*]}"
if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "deps: run as root:  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
