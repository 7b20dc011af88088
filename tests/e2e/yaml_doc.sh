#!/usr/bin/env bash
# yaml_doc.sh: docs/yaml.md is exactly `bgfm doc yaml` (regenerate it with
# `build/bgfm doc yaml > docs/yaml.md` after changing any option table), and
# `bgfm doc` handles its other topics and bad usage.
source "$(dirname "$0")/../lib/tap.sh"
$BGFM doc yaml >"$T/yaml.md" 2>"$T/err"
check "bgfm doc yaml succeeds" test $? -eq 0 -a ! -s "$T/err"
if cmp -s "$T/yaml.md" "$ROOT/docs/yaml.md"; then ok "docs/yaml.md is the output of bgfm doc yaml"
else notok "docs/yaml.md is stale: run 'build/bgfm doc yaml > docs/yaml.md'"; diff "$ROOT/docs/yaml.md" "$T/yaml.md" | head -20 | sed 's/^/# /'; fi
# every kind registered in pipeline/engine/kinds.c has a section, every key of the fixed
# blocks a row
for k in $(sed -n 's/^ *&bgfm_stage_\([a-z0-9_]*\),.*/\1/p' "$ROOT/pipeline/engine/kinds.c"); do
  check "stage kind $k documented" grep -q "^### \`uses: $k\`" "$T/yaml.md"
done
for key in name workdir seed on_error inputs atlases stages slurm bids label_column participants \
           path labels uses with partition account qos nodes ntasks_per_node cpus_per_task mem \
           time constraint extra signal_grace launcher; do
  grep -q "^| \`$key\` |" "$T/yaml.md" || notok "key $key missing from the reference"
done
ok "every fixed key has a row"
$BGFM doc errors >"$T/errors.md"
check "bgfm doc errors lists every exit code" test "$(grep -cE '^\| (0|1|2|3|4|5|6|7|9|75) \|' "$T/errors.md")" -eq 10
expect_rc "bgfm doc with an unknown topic exits 2" 2 $BGFM doc nonsense 2>/dev/null
expect_rc "bgfm doc --help exits 0" 0 sh -c "$BGFM doc --help >/dev/null"
$MPIRUN 2 $BGFM doc yaml >"$T/yaml2.md" 2>/dev/null
check "under mpirun the reference is printed once" cmp -s "$T/yaml.md" "$T/yaml2.md"
