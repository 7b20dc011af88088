# pipeline.sh: the dataset and pipeline file most shell tests start from (sourced by
# tap.sh). Not a fixture of any one test: a test that needs another shape writes it.
#
# tiny_dataset DIR [tiny_bids.py options]: the tiny BIDS dataset DIR/bids with its atlas
#   DIR/atlas.nii.gz (tests/lib/tiny_bids.py), or the test stops with "not ok".
# pipeline_yaml FILE WORKDIR [CONN_WITH [STAGE...]]: a pipeline over $DATA (default
#   $T/d): parcellate `parc` (standardize: zscore) and connectivity `conn` with CONN_WITH
#   (default {windows: {length: 10, stride: 5}}), then one line per further STAGE
#   ("{name: pre, uses: pretrain, with: {...}}"). Top level: name $PIPE_NAME (t), seed
#   $PIPE_SEED (0, the default), and the lines of $PIPE_TOP (e.g. "on_error: skip").
# meta_ranks_resume STAGE STOP_AFTER: below.
# h5_same A.h5 B.h5 [GROUP [MIN]]: every dataset below GROUP (default the root) of both
#   files has the same names, dtype, shape and bytes, and there are at least MIN of them
#   (default 1); prints the count (tests/lib/h5same.py).
# share_upstream WORKDIR FROM: WORKDIR starts with FROM's `parc` and `conn` outputs and
#   its hash cache. A run of the same dataset, seed and parc/conn options finds them "up to
#   date, skipped" (the same fingerprints) and computes only the stages after them.
# fill_fs DIR KB: a file DIR/filler that leaves about KB KiB free on DIR's file system
#   (the full-disk tests, on a small tmpfs).
share_upstream() {
  mkdir -p "$1/.bgfm" && cp -r "$2/parc" "$2/conn" "$1/" && cp "$2/.bgfm/hashcache.tsv" "$1/.bgfm/"
}
fill_fs() {
  local free_kb; free_kb=$(df -k --output=avail "$1" | tail -1)
  [ "$free_kb" -gt "$2" ] && dd if=/dev/zero of="$1/filler" bs=1k count=$((free_kb - $2)) status=none 2>/dev/null
  true
}
tiny_dataset() {
  local d=$1; shift
  "$PY" "$ROOT/tests/lib/tiny_bids.py" "$d" "$@" >/dev/null || { notok "tiny dataset"; exit 1; }
}
pipeline_yaml() {
  local f=$1 w=$2 conn=${3:-"{windows: {length: 10, stride: 5}}"} d=${DATA:-$T/d}
  shift; shift; [ $# -gt 0 ] && shift
  {
    printf 'name: %s\nworkdir: %s\nseed: %s\n' "${PIPE_NAME:-t}" "$w" "${PIPE_SEED:-0}"
    [ -n "${PIPE_TOP:-}" ] && printf '%s\n' "$PIPE_TOP"
    printf 'inputs: {bids: %s/bids}\natlases:\n  - {name: tiny, path: %s/atlas.nii.gz}\n' "$d" "$d"
    printf 'stages:\n  - {name: parc, uses: parcellate, with: {standardize: zscore}}\n'
    printf '  - {name: conn, uses: connectivity, with: %s}\n' "$conn"
    local s; for s in "$@"; do printf '  - %s\n' "$s"; done
  } >"$f"
}
# two_atlases IN OUT [WORKDIR]: pipeline file IN with a second atlas, tiny_b, the same atlas
#   file under another name (its head is then fitted on rank 1), written to OUT; WORKDIR: another workdir
two_atlases() {
  sed "s|^  - {name: tiny, path: \(.*\)}$|&\n  - {name: tiny_b, path: \1}|${3:+; s|workdir: .*|workdir: $3|}" "$1" >"$2"
}
# adapt_yaml FILE WORKDIR STAGE...: the adaptation tests' pipeline on $T/d (seed 9):
#   parcellate, connectivity, a small pretrain, the probe (PROBE_W), then the STAGE lines;
#   PARTICIPANTS: another participants.tsv; EXTRA_ATLAS: a second atlas name (same file).
adapt_yaml() {
  local f=$1 w=$2 pw=${PROBE_W:-"{folds: 3, repeats: 1, few_shot: [2, all]}"}
  shift 2
  {
    printf 'name: adapt\nworkdir: %s\nseed: 9\ninputs: {bids: %s/bids%s}\natlases:\n' "$w" "$T/d" \
      "${PARTICIPANTS:+, participants: $PARTICIPANTS}"
    printf '  - {name: tiny, path: %s/atlas.nii.gz}\n' "$T/d"
    [ -n "${EXTRA_ATLAS:-}" ] && printf '  - {name: %s, path: %s/atlas.nii.gz}\n' "$EXTRA_ATLAS" "$T/d"
    printf 'stages:\n  - {name: parc, uses: parcellate, with: {standardize: zscore}}\n'
    printf '  - {name: conn, uses: connectivity, with: {windows: {length: 10, stride: 5}}}\n'
    printf '  - {name: pre, uses: pretrain, with: {epochs: 2, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}\n'
    printf '  - {name: probe, uses: probe, with: %s}\n' "$pw"
    local s; for s in "$@"; do printf '  - %s\n' "$s"; done
  } >"$f"
}
h5_same() { "$PY" "$ROOT/tests/lib/h5same.py" "$@"; }
# meta_ranks_resume STAGE STOP_AFTER: the meta tests' second half. $T/a.yaml has run on 1
#   rank into $T/wa; STAGE (a prompt stage with meta) runs again on 2 ranks in a copy
#   ($T/wb): the same selected epochs, predictions within 1e-4, the same subjects read;
#   then in another copy ($T/wc) it is stopped after STOP_AFTER epochs (exit 75) and
#   rerun: predictions.csv and meta_subjects.csv identical to the uninterrupted run.
meta_ranks_resume() {
  local st=$1 n=$2 c
  for c in b c; do
    cp -r "$T/wa" "$T/w$c"
    sed "s#$T/wa#$T/w$c#" "$T/a.yaml" >"$T/$c.yaml"
  done
  expect_rc "$st on 2 ranks (same checkpoint)" 0 $MPIRUN 2 "$BGFM" run "$T/b.yaml" --only "$st" --force --quiet
  check "1 and 2 ranks: the same selected epochs, predictions within 1e-4" \
    "$PY" "$ROOT/tests/lib/adapt_check.py" ranks "$T/wa/$st/report" "$T/wb/$st/report" prompt
  check "  ... and the same subjects read" cmp "$T/wa/$st/report/meta_subjects.csv" "$T/wb/$st/report/meta_subjects.csv"
  rm -rf "${T:?}/wc/$st"
  BGFM_TEST_STOP_AFTER=$n $MPIRUN 2 "$BGFM_T" run "$T/c.yaml" --only "$st" --quiet >/dev/null 2>&1
  local rc=$?
  [ "$rc" = 75 ] && ok "stopped after $n epochs: exit 75" || notok "stopped after $n epochs: exit 75 (got $rc)"
  expect_rc "  ... rerun resumes" 0 $MPIRUN 2 "$BGFM" run "$T/c.yaml" --only "$st" --quiet
  check "  ... predictions.csv and meta_subjects.csv identical to the uninterrupted run" \
    sh -c "cmp '$T/wb/$st/report/predictions.csv' '$T/wc/$st/report/predictions.csv' && cmp '$T/wb/$st/report/meta_subjects.csv' '$T/wc/$st/report/meta_subjects.csv'"
}
