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
ROUNDS=${1:-${ROUNDS:-3}}
SIZES=${SIZES:-"200:3:6670 400:3:6670 400:3:1128"}
bench_driver pop_rule
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SIZES; do
  IFS=: read -r S W TT <<<"$s"
  echo "== $S people x $W windows, T = $TT, $ROUNDS rounds, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
  "$T/pop_rule" "$S" "$W" "$TT" "$ROUNDS" | sed 's/^/   /'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
