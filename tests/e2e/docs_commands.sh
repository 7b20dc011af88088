#!/usr/bin/env bash
# docs_commands.sh: every command shown in README.md and docs/ runs as written (in a
# sandbox that looks like the repository, the demo cohort made by docs/synth.md's command),
# except an explicit skip list (Slurm, installs, the whole suite, long studies, synopses,
# a repeat of a command already run;
# tests/lib/docs_commands.py lists each with its reason); the example messages of
# docs/errors.md are produced word for word. As tests/e2e/yaml_doc.sh does for docs/yaml.md.
source "$(dirname "$0")/../lib/tap.sh"
mkdir -p "$T/s"
"$PY" "$ROOT/tests/lib/docs_commands.py" "$ROOT" "$ROOT/${BGFM_BUILD:-build}" "$T/s"
