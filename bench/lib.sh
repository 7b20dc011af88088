# bench/lib.sh: what the benchmark scripts share; source it first (bash).
#   bench_init NAME          ROOT, BGFM (the program), BGFM_T (the test driver), PY; one
#                            OpenBLAS/OpenMP thread per rank, mpirun allowed as root; T = a
#                            fresh folder (${TMPDIR:-/tmp}/bgfm-bench-NAME.XXXXXX) removed at
#                            exit (a script that needs more at exit sets its own trap and
#                            removes "$T" there too); kept when BENCH_KEEP is set, to look
#                            into afterwards
#   bench_driver NAME        builds libbgfm.a (${BGFM_BUILD:-build}) and links the driver
#                            bench/NAME.c against it, with the project's warnings, into $T/NAME
#   bench_tiny_pipeline WITH [CONN]
#                            $T/d, a 2-subject dataset of 30 volumes (tests/lib/tiny_bids.py;
#                            TINY_ARGS: other arguments for it), and $T/p.yaml: parcellate
#                            (parc), connectivity (conn; CONN: its `with:` map) and a
#                            pretrain stage (pre) whose `with:` map is WITH; workdir $T/w
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BGFM="$ROOT/${BGFM_BUILD:-build}/bgfm"
BGFM_T="$ROOT/${BGFM_BUILD:-build}/tests/bgfm-test"
PY=/usr/bin/python3

bench_init() {
  export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  T=$(mktemp -d "${TMPDIR:-/tmp}/bgfm-bench-$1.XXXXXX")
  # shellcheck disable=SC2064
  [ -n "${BENCH_KEEP:-}" ] || trap "rm -rf '$T'" EXIT
}

bench_driver() {
  local build=${BGFM_BUILD:-build} pkgs="hdf5-openmpi yaml-0.1 openblas libisal zlib"
  make -s -C "$ROOT" BUILD="$build" "$build/libbgfm.a" >/dev/null
  # shellcheck disable=SC2046
  mpicc -std=c17 -D_GNU_SOURCE -pthread -Wall -Wextra -Wpedantic -Wshadow -Wmissing-prototypes \
    -Wvla -Wdouble-promotion -Wcast-qual -Werror -O2 -g -march=native -I"$ROOT/include" \
    $(pkg-config --cflags $pkgs) "$ROOT/bench/$1.c" -o "$T/$1" "$ROOT/$build/libbgfm.a" \
    $(pkg-config --libs $pkgs) -llapacke -lnifti2 -lm -pthread
}

bench_tiny_pipeline() {
  # shellcheck disable=SC2086
  "$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/d" ${TINY_ARGS:---subjects 2 --volumes 30} >/dev/null
  cat >"$T/p.yaml" <<YAML
name: bench
workdir: $T/w
seed: 1
inputs: {bids: $T/d/bids}
atlases:
  - {name: tiny, path: $T/d/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate}
  - {name: conn, uses: connectivity${2:+, with: $2}}
  - {name: pre, uses: pretrain, with: $1}
YAML
}
