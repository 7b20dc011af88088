#!/usr/bin/env bash
# transfer_study.sh: does pretraining learn what distinguishes people? (issue 12,
# docs/results.md). On a trait cohort (bgfm synth --traits, or any BIDS folder with
# numeric trait columns), runs parcellate -> connectivity -> pretrain -> probe with the
# pipeline's defaults (only model size and epochs given) under both protocols
# (transductive: pretraining reads every subject; strict: never a probed one) and
# several seeds, then the oracle bound (bench/transfer/oracle.py), and prints the
# few-shot tables (bench/transfer/summary.py). Not a test: figures for results.md.
#
#   bench/transfer_study.sh [OPTIONS]
#     --cohort DIR        BIDS folder (default: made with bgfm synth under --out)
#     --out DIR           work folder (default runs/transfer)
#     --seeds "1 2 3"     pipeline seeds (pretraining init, batches, folds)
#     --epochs E          pretraining epochs (default 20)
#     --protocols "transductive strict"
#     --variant NAME=OPTS extra pretrain options for an ablation, e.g.
#                         --variant mean_readout="readout: mean" (repeatable; the
#                         default configuration runs as "default" too)
#     --no-default        only the --variant runs (the default's folder left as it is:
#                         a new binary's variant beside an older binary's default)
#     --targets "trait_1,...,score"   probe targets (default: every trait_* and score column)
#     --np N              MPI ranks (default 2)
#     --repeats R         the probe's fold draws (default 10; sections 1-12c of
#                         docs/results.md were measured with 3, the probe's default)
#     --synth "ARGS"      bgfm synth arguments for the default cohort
#     --parcellate "OPTS" extra parcellate options, e.g. "confounds: [motion24], scrub: 0.5"
#                         (the cohort's preprocessing, not a model option; docs/parcellate.md)
#     --skip              on_error: skip (images parcellate refuses, e.g. scrubbed beyond
#                         max_scrubbed, are left out; the run's exit 9 is then accepted)
#     --probe "OPTS"      extra probe options, e.g. "regress_out: [motion]" (docs/probe.md);
#                         the targets' judge is the probe without them (docs/results.md)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=/usr/bin/python3
B=${BGFM:-$ROOT/build/bgfm}   # BGFM=path: a pinned binary (not rebuilt) for long studies
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
OUT=runs/transfer COHORT="" SEEDS="1 2 3" EPOCHS=20 PROTOCOLS="transductive strict" NP=2 TARGETS="" REPEATS=10
SYNTH="--subjects 64 --unlabelled 200 --volumes 150 --tr 2 --voxel-size 3 --sites 3 --seed 21"
VARIANTS=("default=") PARC="" ONERR=fail NODEFAULT=0 PROBE=
while [ $# -gt 0 ]; do
  case $1 in
    --cohort) COHORT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --protocols) PROTOCOLS=$2; shift 2 ;;
    --variant) VARIANTS+=("$2"); shift 2 ;;
    --no-default) NODEFAULT=1; shift ;;
    --targets) TARGETS=$2; shift 2 ;;
    --np) NP=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --synth) SYNTH=$2; shift 2 ;;
    --parcellate) PARC=", $2"; shift 2 ;;
    --skip) ONERR=skip; shift ;;
    --probe) PROBE=", $2"; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "transfer_study: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "${BGFM:-}" ] || make -s build/bgfm >/dev/null
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -z "$COHORT" ]; then
  COHORT=$OUT/cohort
  [ -f "$COHORT/participants.tsv" ] || mpirun --oversubscribe -np "$NP" "$B" synth --out "$COHORT" $SYNTH --quiet
fi
COHORT=$(cd "$COHORT" && pwd)
if [ -z "$TARGETS" ]; then
  TARGETS=$(head -1 "$COHORT/participants.tsv" | tr '\t' '\n' | grep -E '^(trait_[0-9]+|score)$' | paste -sd, -)
fi
echo "transfer_study: cohort $COHORT${PARC:+, parcellate$PARC}, targets $TARGETS, seeds $SEEDS, epochs $EPOCHS, load $(cut -d' ' -f1 /proc/loadavg)"
[ "$NODEFAULT" = 1 ] && VARIANTS=("${VARIANTS[@]:1}")
[ ${#VARIANTS[@]} -gt 0 ] || { echo "transfer_study: --no-default needs a --variant" >&2; exit 2; }
first=$OUT/default/${PROTOCOLS%% *}/seed${SEEDS%% *}   # its parcellation, when it has one
if [ "$NODEFAULT" = 1 ] && [ -d "$first/connectivity" ]; then BASE=$first; fi
for v in "${VARIANTS[@]}"; do
  name=${v%%=*} opts=${v#*=}
  for proto in $PROTOCOLS; do
    for seed in $SEEDS; do
      wd=$OUT/$name/$proto/seed$seed
      mkdir -p "$wd"
      extra=", protocol: $proto"
      [ -n "$opts" ] && extra="$extra, $opts"
      sed -e "s|@WORKDIR@|$wd|; s|@SEED@|$seed|; s|@BIDS@|$COHORT|; s|@EPOCHS@|$EPOCHS|" \
          -e "s|@PARCELLATE@|$PARC|; s|@ONERROR@|$ONERR|" \
          -e "s|@PRETRAIN@|$extra|; s|@TARGETS@|$TARGETS|; s|@PROBE@|, repeats: $REPEATS$PROBE|" \
          bench/transfer/study.yaml.in > "$wd.yaml"
      # parcellate and connectivity do not depend on the variant, protocol or seed
      # (the seed only keys pretraining and the probe): reuse the first run's outputs,
      # which the engine then finds up to date
      if [ -n "${BASE:-}" ] && [ ! -d "$wd/connectivity" ]; then
        cp -r "$BASE/parcellate" "$BASE/connectivity" "$wd/"
      fi
      t0=$(date +%s)
      rc=0
      mpirun --oversubscribe -np "$NP" "$B" run "$wd.yaml" > "$wd.log" 2>&1 || rc=$?
      if [ $rc -ne 0 ] && ! { [ $rc -eq 9 ] && [ $ONERR = skip ]; }; then
        echo "transfer_study: $wd failed (exit $rc, see $wd.log)"; tail -5 "$wd.log"; exit 1
      fi
      if [ $rc -eq 9 ]; then echo "transfer_study: $wd: inputs skipped (on_error: skip; see $wd.log)"; fi
      echo "transfer_study: $name $proto seed $seed done in $(( $(date +%s) - t0 )) s"
      BASE=${BASE:-$wd}
    done
  done
done
$PY bench/transfer/oracle.py "$COHORT" "$OUT" --targets "$TARGETS"
$PY bench/transfer/summary.py "$OUT"
