# tap.sh: helpers for shell tests. Source it; it sets BGFM, BGFM_T (the test driver:
# the same commands with the BGFM_TEST_* hooks, tests/lib/bgfm_test.c), MPIRUN, PY, T (a
# temp dir removed at exit), prints TAP lines, and brings tests/lib/pipeline.sh
# (tiny_dataset, pipeline_yaml, h5_same).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BGFM="$ROOT/${BGFM_BUILD:-build}/bgfm"
BGFM_T="$ROOT/${BGFM_BUILD:-build}/tests/bgfm-test"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
MPIRUN="mpirun --oversubscribe -np"
T=$(mktemp -d /tmp/bgfm-t.XXXXXX)
trap '[ -n "${BGFM_KEEP_T:-}" ] && echo "# kept $T" || rm -rf "$T"' EXIT  # BGFM_KEEP_T=1: keep it to look into
ok()    { echo "ok - $*"; }
notok() { echo "not ok - $*"; }
# check NAME CMD...: ok if CMD succeeds
check() { local n=$1; shift; if "$@"; then ok "$n"; else notok "$n"; fi; }
# expect_rc NAME RC CMD...: ok if CMD exits with RC
# content_sum FILE: SHA-256 of FILE's content, of what it decompresses to for a .gz file
# (ISA-L's deflate bytes for the same input are not always the same on this machine:
# docs/reliability.md)
content_sum() { case $1 in *.gz) gzip -dc "$1" | sha256sum | cut -d' ' -f1 ;; *) sha256sum < "$1" | cut -d' ' -f1 ;; esac; }
expect_rc() { local n=$1 want=$2; shift 2; "$@"; local rc=$?; if [ "$rc" -eq "$want" ]; then ok "$n"; else notok "$n (exit $rc, wanted $want)"; fi; }
# the shared dataset, pipeline file and HDF5 comparison: tiny_dataset, pipeline_yaml, h5_same
source "$ROOT/tests/lib/pipeline.sh"
