#!/usr/bin/env bash
# pop_rule.sh: what pop_rank: auto's held-out rule (16 fits up the ladder of thresholds)
# adds to the population head's fit, measured in the same run (bench/pop_rule.c over
# build/libbgfm.a): the fit with a fixed rank against the fit with the rule, interleaved.
# Sizes of the transfer study (3 windows per person; AAL's T = 6670, Harvard-Oxford's
# 1128). Prints the load average with the figures (docs/performance.md, "The population
# head"). Not a test.
#   bench/pop_rule.sh [ROUNDS]      (SIZES="S:W:T ..." overrides)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init pop_rule
cd "$ROOT"
BUILD=${BGFM_BUILD:-build}
ROUNDS=${1:-${ROUNDS:-3}}
SIZES=${SIZES:-"200:3:6670 400:3:6670 400:3:1128"}
make -s BUILD="$BUILD" "$BUILD/libbgfm.a" >/dev/null
PKGS="hdf5-openmpi yaml-0.1 openblas libisal zlib"
mpicc -std=c17 -D_GNU_SOURCE -pthread -Wall -Wextra -Wpedantic -Wshadow -Wmissing-prototypes -Wvla \
  -Wdouble-promotion -Wcast-qual -Werror -O2 -g -march=native -Iinclude $(pkg-config --cflags $PKGS) \
  bench/pop_rule.c -o "$T/pop_rule" "$BUILD/libbgfm.a" $(pkg-config --libs $PKGS) -llapacke -lnifti2 -lm -pthread
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SIZES; do
  IFS=: read -r S W TT <<<"$s"
  echo "== $S people x $W windows, T = $TT, $ROUNDS rounds, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
  "$T/pop_rule" "$S" "$W" "$TT" "$ROUNDS" | sed 's/^/   /'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
