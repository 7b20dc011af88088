#!/usr/bin/env bash
# disk_full.sh: the workdir on a 2 MiB tmpfs (as root; else `ulimit -f`, which stops a
# write with EFBIG the same way). After a complete parcellate -> connectivity run the
# file system is filled up; rerunning parcellate (--force) and then connectivity must
# each fail with exit 4 naming the file being written, leave the earlier complete
# outputs and manifests byte-identical and no partial folder; with space freed, a
# rerun completes.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 4 --volumes 60
W="$T/w"; mkdir -p "$W"
MOUNTED=0
if mount -t tmpfs -o size=2m tmpfs "$W" 2>/dev/null; then MOUNTED=1; trap 'umount "$W" 2>/dev/null; rm -rf "$T"' EXIT; fi
PIPE_NAME=diskfull pipeline_yaml "$T/p.yaml" "$W" "{windows: {length: 10, stride: 2}, graphs_per_shard: 16}"
expect_rc "complete run on the small file system" 0 timeout 60 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --quiet
sums() { (cd "$W" && find parc conn -type f | sort | xargs sha256sum); }
BEFORE=$(sums)
fill() { if [ $MOUNTED -eq 1 ]; then fill_fs "$W" "$1"; fi; }  # leave about $1 KiB free
run_full() {  # run_full NAME NP ARGS...: exit 4, file named, outputs intact
  local name=$1 np_=$2; shift 2
  if [ $MOUNTED -eq 1 ]; then timeout 60 $MPIRUN $np_ "$BGFM" run "$T/p.yaml" "$@" --quiet >"$T/out" 2>&1
  else (ulimit -f 8; timeout 60 $MPIRUN $np_ "$BGFM" run "$T/p.yaml" "$@" --quiet >"$T/out" 2>&1); fi
  local rc=$?
  check "$name: exit 4" test $rc -eq 4
  [ $rc -eq 4 ] || sed 's/^/# /' "$T/out" | tail -4
  check "$name: the message names the file being written" grep -q "bgfm: error: .*$W/.*\.h5" "$T/out"
  grep "bgfm: error" "$T/out" | head -1 | sed 's/^/# /'
  check "$name: earlier complete outputs and manifests intact" test "$BEFORE" = "$(sums)"
  check "$name: no partial or old folder left" test -z "$(ls -A "$W" | grep -e '\.partial$' -e '\.old$')"
}
# parcellate on 1 and on 2 ranks: on 2 ranks the collective writes of timeseries.h5
# agree on their outcome, so a write that fails on one rank stops both (no hang; the
# timeout turns a hang into a failure)
fill 4
run_full "parcellate (--only parc --force, 1 rank) on a full disk" 1 --only parc --force
rm -f "$W/filler"; fill 4
run_full "parcellate (--only parc --force, 2 ranks) on a full disk" 2 --only parc --force
rm -f "$W/filler"; fill 24
run_full "connectivity (2 ranks, shard writes) on a full disk" 2 --from conn
rm -f "$W/filler"
expect_rc "space freed: the rerun completes" 0 timeout 60 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --from parc --quiet
check "... with manifests for both stages" test -f "$W/parc/manifest.json" -a -f "$W/conn/manifest.json"
