#!/usr/bin/env bash
# adapt_step.sh: the cost of one fine-tuning step (train: all), one head-only step and
# one prompt-tuning step (the prompt stage's: frozen encoder, feature + edge prompts)
# against one pretraining step (gmae+gcl) of the same batch and model, measured in the
# same run, interleaved step by step (bench/adapt_step.c over build/libbgfm.a). Targets
# (issue 15): finetune / pretrain <= 1; finetune / prompt >= 3 (prompt_over_finetune <= 0.33). Prints the load average with the figures
# (docs/performance.md, "Adaptation step"). Not a test.
#   bench/adapt_step.sh [STEPS]      (CONFIGS="H:L:N:B ..." and THREADS="1 2" override)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init adapt_step
cd "$ROOT"
STEPS=${1:-${STEPS:-8}}
CONFIGS=${CONFIGS:-"128:2:116:32 64:2:48:16"}
THREADS=${THREADS:-"1"}
bench_driver adapt_step
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for cfg in $CONFIGS; do
  IFS=: read -r H L N B <<<"$cfg"
  for th in $THREADS; do
    echo "== H=$H L=$L N=$N B=$B, $th thread(s), $STEPS timed steps"
    OPENBLAS_NUM_THREADS=$th "$T/adapt_step" "$H" "$L" "$N" "$B" "$STEPS" | sed 's/^/   /'
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
