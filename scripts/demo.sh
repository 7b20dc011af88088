#!/usr/bin/env bash
# demo.sh: make a small synthetic BIDS cohort (once) and run jobs/demo.yaml on 2 MPI ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
NP=${NP:-2}
B=build/bgfm
if [ ! -f data/demo/participants.tsv ]; then
  echo "demo: writing a synthetic cohort to data/demo"
  mpirun --oversubscribe -np "$NP" "$B" synth --out data/demo --subjects 16 --unlabelled 32 \
    --volumes 120 --tr 2.0 --voxel-size 3 --sites 2 --seed 7
fi
echo "demo: mpirun -np $NP $B run jobs/demo.yaml"
mpirun --oversubscribe -np "$NP" "$B" run jobs/demo.yaml
for f in runs/demo/*/timeseries.h5; do
  [ -f "$f" ] && "$B" inspect "$f" | sed -n '1p;/^atlases:/,$p'
done
for f in runs/demo/*/index.h5; do [ -f "$f" ] && "$B" inspect "$f"; done
"$B" report runs/demo
echo "demo: outputs in runs/demo (metrics: runs/demo/metrics.jsonl)"
