#!/usr/bin/env bash
# config_errors.sh: `bgfm validate` / `bgfm run` on good and bad pipeline files: exit
# code 2 and a FILE:LINE:COL message before any work starts, one message under mpirun,
# and the resolved output (every default filled in) validating to itself.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 2 --volumes 12
mkdir -p "$T/cfg"
good() {
cat <<YAML
name: cfgtest
workdir: ../w
inputs: {bids: ../d/bids}
atlases:
  - {name: tiny, path: ../d/atlas.nii.gz}
stages:
  - name: parc
    uses: parcellate
    with: {detrend: false}
YAML
}
good >"$T/cfg/good.yaml"

# ---- the good file, and its resolved form
$BGFM validate "$T/cfg/good.yaml" >"$T/v1" 2>"$T/e1"
check "good file validates" test $? -eq 0
check "default label_column filled in" grep -qx "  label_column: diagnosis" "$T/v1"
check "default slurm signal_grace filled in" grep -qx "  signal_grace: 300" "$T/v1"
check "relative bids resolved against the file's folder" grep -qx "  bids: $(realpath "$T/d/bids")" "$T/v1"
check "default participants under bids" grep -qx "  participants: $(realpath "$T/d/bids")/participants.tsv" "$T/v1"
check "relative workdir resolved" grep -qx "workdir: $(realpath "$T")/w" "$T/v1"
# The resolved YAML is the part of the output before the plan.
sed -n '/^# .* resolved by bgfm/,/^# plan/p' "$T/v1" | grep -v '^# plan' >"$T/cfg/resolved.yaml"
check "resolved part found" grep -q "^stages:" "$T/cfg/resolved.yaml"
$BGFM validate "$T/cfg/resolved.yaml" >"$T/v2" 2>"$T/e2"
check "resolved output validates" test $? -eq 0
sed -n '/^# .* resolved by bgfm/,/^# plan/p' "$T/v2" | grep -v '^# plan' >"$T/cfg/resolved2.yaml"
check "resolved output is a fixed point" cmp -s <(tail -n +2 "$T/cfg/resolved.yaml") <(tail -n +2 "$T/cfg/resolved2.yaml")

# An independent reader (PyYAML) sees in the resolved file the values the user wrote.
cat >"$T/cfg/rich.yaml" <<YAML
name: rich
inputs: {bids: ../d/bids, label_column: group}
atlases: [{name: tiny, path: ../d/atlas.nii.gz}]
stages:
  - {name: parc, uses: parcellate, with: {high_pass: 0.01, low_pass: 0.1, detrend: false, standardize: zscore}}
slurm: {time: "01:00:00", mem: 4G, extra: ["--gres=gpu:1", "--exclusive"], nodes: 2, account: "1234"}
YAML
$BGFM validate "$T/cfg/rich.yaml" 2>/dev/null | sed -n '/^# .* resolved by bgfm/,/^# plan/p' | grep -v '^# plan' >"$T/cfg/rich.resolved.yaml"
check "PyYAML reads the resolved file with the user's values" $PY - "$T/cfg/rich.yaml" "$T/cfg/rich.resolved.yaml" "$(realpath "$T")" <<'PY'
import sys, yaml
src = yaml.safe_load(open(sys.argv[1])); res = yaml.safe_load(open(sys.argv[2])); root = sys.argv[3]
assert res["name"] == "rich" and res["seed"] == 0 and res["on_error"] == "fail", res
assert res["workdir"] == root + "/cfg/runs/rich", res["workdir"]
assert res["inputs"]["bids"] == root + "/d/bids" and res["inputs"]["label_column"] == "group"
w0, w1 = src["stages"][0]["with"], res["stages"][0]["with"]
for k, v in w0.items():
    assert w1[k] == v and type(w1[k]) is type(v), (k, v, w1[k])
for k, v in src["slurm"].items():
    assert res["slurm"][k] == v and type(res["slurm"][k]) is type(v), (k, v, res["slurm"][k])
assert res["slurm"]["signal_grace"] == 300 and res["slurm"]["launcher"] == "auto"
assert res["atlases"] == [{"name": "tiny", "path": root + "/d/atlas.nii.gz"}], res["atlases"]
PY

# ---- bad files: exit 2, the exact message, nothing written
bad() {  # bad NAME EXPECTED-MESSAGE  (file content on stdin)
  local f="$T/cfg/$(printf '%s' "$1" | tr -c 'a-z0-9' '_').yaml"
  cat >"$f"
  rm -rf "$T/w"
  $BGFM run "$f" >"$T/out" 2>"$T/err"
  local rc=$?
  local want="bgfm: error: $f:$2"
  if [ $rc -eq 2 ] && grep -qxF "$want" "$T/err" && [ ! -e "$T/w" ]; then ok "$1"
  else notok "$1 (exit $rc; stderr: $(head -c 300 "$T/err"); wanted: $want)"; fi
}
good | sed 's/^name:/nmae:/' | bad "typo in a top-level key" "1:1: unknown key (key 'nmae'); did you mean 'name'?"
good | sed 's/detrend: false/detrend: no/' | bad "YAML 1.1 bool rejected with a hint" \
  "9:21: expected true or false, got 'no' (YAML 1.1 spellings such as yes/no/on/off are not accepted: write false) (key 'stages.parc.with.detrend')"
good | sed 's/detrend: false/detrnd: false/' | bad "typo in a with: key" \
  "9:12: unknown key (key 'stages.parc.with.detrnd'); did you mean 'detrend'?"
good | sed 's/uses: parcellate/uses: parcelate/' | bad "unknown stage kind" \
  "8:11: unknown stage kind 'parcelate' (known kinds: $($BGFM doc yaml | sed -n 's/^### `uses: \(.*\)`$/\1/p' | paste -sd, | sed 's/,/, /g')) (key 'stages.parc.uses'); did you mean 'parcellate'?"
{ good; echo "seed: \"7\""; } | bad "quoted number" \
  "10:7: expected an integer, got the quoted string \"7\" (remove the quotes) (key 'seed')"
{ good; echo "seed: 1"; echo "seed: 2"; } | bad "duplicate key" \
  "11:1: duplicate key (first given at line 10, column 1) (key 'seed')"
{ good; echo "  - {name: parc, uses: parcellate}"; } | bad "duplicate stage name" \
  "10:12: duplicate stage name 'parc' (first at line 7) (key 'stages.parc.name')"
good | sed 's/- name: parc$/- name: report/' | bad "reserved stage name" \
  "7:11: stage name 'report' is reserved: WORKDIR/report/ holds the run report page (docs/report.md); choose another name (key 'stages.report.name')"
good | sed 's/^name: cfgtest/name: \&n cfgtest/' | bad "anchor rejected" \
  "1:7: YAML anchor '&n' is not allowed: anchors and aliases are rejected (they can expand a small file into a huge one); write the value out"
good | sed 's/^  - {name: tiny/  - {name: tiny, bogus: [/' | bad "syntax error" \
  "5:26: YAML syntax error: did not find expected node content (while parsing a flow node at line 5, column 26)"
{ good; echo "---"; good; } | bad "two documents" \
  "10:1: a second YAML document: a pipeline file holds exactly one (remove the '---' line and what follows it)"
{ good; echo "slurm: {time: 1h}"; } | bad "bad slurm time" \
  "10:15: '1h' is not a Slurm time limit (write MINUTES, \"HH:MM:SS\" or \"D-HH:MM:SS\") (key 'slurm.time')"

# ---- file-level errors
$BGFM validate "$T/cfg/missing.yaml" >/dev/null 2>"$T/err"
rc=$?
check "missing file: exit 2, file named" test $rc -eq 2 -a "$(cat "$T/err")" = "bgfm: error: cannot open pipeline file '$T/cfg/missing.yaml': No such file or directory"
$BGFM validate "$T/cfg" >/dev/null 2>"$T/err"
check "a directory is not a pipeline file" test $? -eq 2
{ good; head -c 1100000 /dev/zero | tr '\0' '#'; } >"$T/cfg/big.yaml"
$BGFM validate "$T/cfg/big.yaml" >/dev/null 2>"$T/err"
rc=$?
check "file over 1 MiB rejected" test $rc -eq 2 -a "$(cat "$T/err")" = "bgfm: error: pipeline file '$T/cfg/big.yaml' is larger than 1 MiB (1048576 bytes); a pipeline file only describes the run"

# ---- under mpirun: every rank agrees, the message is printed once
good | sed 's/^name:/nmae:/' >"$T/cfg/typo.yaml"
$MPIRUN 2 $BGFM validate "$T/cfg/typo.yaml" >/dev/null 2>"$T/err"
rc=$?
check "2 ranks: exit 2" test $rc -eq 2
check "2 ranks: one message, from rank 0" test "$(grep -c 'bgfm: error:' "$T/err")" -eq 1 -a \
  "$(grep 'bgfm: error:' "$T/err")" = "bgfm: error: rank 0: $T/cfg/typo.yaml:1:1: unknown key (key 'nmae'); did you mean 'name'?"
$MPIRUN 2 $BGFM validate "$T/cfg/good.yaml" >"$T/v3" 2>/dev/null
check "2 ranks: good file validates, resolved once" test $? -eq 0 -a "$(grep -c '^name: cfgtest' "$T/v3")" -eq 1
$MPIRUN 2 $BGFM validate "$T/cfg/missing.yaml" >/dev/null 2>"$T/err"
check "2 ranks: missing file, exit 2" test $? -eq 2
