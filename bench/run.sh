#!/usr/bin/env bash
# run.sh: every benchmark (bench/*.sh except this one and lib.sh, their shared start). Reports, not tests: each prints
# its figures and ratios against references measured in the same run.
#   bench/run.sh [PATTERN]
set -uo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
pat=${1:-.}
for b in bench/*.sh; do
  case "$(basename "$b")" in run.sh|lib.sh) continue ;; esac
  echo "$b" | grep -qE "$pat" || continue
  echo "=== $b"
  bash "$b" || echo "=== $b exited with $?"
done
