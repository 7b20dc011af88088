#!/usr/bin/env bash
# export_python.sh: the unit tests of python/bgfm_torch (python/tests/test_bgfm_torch.py:
# safetensors reader/writer and hostile files, the strict loader, the module against
# docs/model.md, the GraphStore dataset), one TAP line per test.
source "$(dirname "$0")/../lib/tap.sh"
$PY "$ROOT/python/tests/test_bgfm_torch.py" --tap 2>"$T/err"
rc=$?
[ $rc -eq 0 ] || { notok "python unit tests exited $rc"; tail -30 "$T/err" | sed 's/^/# /'; }
