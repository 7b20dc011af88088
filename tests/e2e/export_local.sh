#!/usr/bin/env bash
# export_local.sh: `bgfm export` started alone runs without MPI (a `local` command of the
# table in dispatch.c: cli_start gives it bgfm_ctx_init_local; docs/architecture.md,
# "Start-up of a single process"), and under `mpirun -np 2` with MPI as before (rank 0
# writes, the ranks agree on the status). Without MPI is shown by an Open MPI setting
# under which MPI_Init fails (OMPI_MCA_pml naming no component): a command that starts
# MPI fails with it, export does not. Both ways write the same bytes, which an
# independent reader (tests/reference/safetensors_ref.py) finds equal to the checkpoint;
# both refuse a corrupted checkpoint and a file that is no checkpoint with exit 3
# naming the file, a missing one with exit 4, and leave no output or temporary file.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 4 --volumes 30
pipeline_yaml "$T/p.yaml" "$T/w" "" \
  "{name: pre, uses: pretrain, with: {epochs: 1, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, batch_size: 8}}"
expect_rc "tiny pipeline up to pretrain" 0 "$BGFM" run "$T/p.yaml" --quiet
CK="$T/w/pre/final.h5"
NOMPI="OMPI_MCA_pml=no_such_pml"  # MPI_Init cannot select a messaging layer

env $NOMPI "$BGFM" inspect "$CK" >/dev/null 2>&1; rc=$?
check "control: with $NOMPI a command that starts MPI fails (exit $rc)" test $rc -ne 0
expect_rc "export alone under $NOMPI: works, so it never starts MPI" 0 \
  env $NOMPI "$BGFM" export "$CK" --out "$T/alone.safetensors"
$PY "$ROOT/tests/reference/safetensors_ref.py" "$T/alone.safetensors" "$CK" encoder | sed 's/^\(not \)*ok - /&without MPI: /'
expect_rc "export --full alone" 0 "$BGFM" export "$CK" --out "$T/full.safetensors" --full
$PY "$ROOT/tests/reference/safetensors_ref.py" "$T/full.safetensors" "$CK" full | sed 's/^\(not \)*ok - /&without MPI, full: /'
expect_rc "export under mpirun -np 2" 0 $MPIRUN 2 "$BGFM" export "$CK" --out "$T/two.safetensors"
check "mpirun -np 2 writes the same bytes as the process alone" cmp -s "$T/alone.safetensors" "$T/two.safetensors"
# a launcher's variables mean MPI: under mpirun the pml setting reaches MPI_Init
env $NOMPI $MPIRUN 2 "$BGFM" export "$CK" --out "$T/never.safetensors" >/dev/null 2>&1; rc=$?
check "under mpirun export does start MPI (fails with $NOMPI, exit $rc), writes nothing" \
  sh -c "[ $rc -ne 0 ] && [ ! -e '$T/never.safetensors' ]"

# ---- bad inputs, alone and on 2 ranks ----
cp "$CK" "$T/flip.h5"
$PY -c "
import h5py
f = h5py.File('$T/flip.h5', 'r'); off = f['model/enc/0/gcn/W'].id.get_offset(); f.close()
b = bytearray(open('$T/flip.h5', 'rb').read()); b[off + 5] ^= 0x40; open('$T/flip.h5', 'wb').write(b)"
echo "not hdf5" >"$T/junk.h5"
bad() {  # bad NAME WANT_RC CHECKPOINT MESSAGE [LAUNCHER...]
  local name=$1 want=$2 ck=$3 msg=$4; shift 4
  "$@" "$BGFM" export "$ck" --out "$T/bad.safetensors" >"$T/out" 2>&1
  local rc=$? n
  n=$(grep -c "bgfm: error:" "$T/out")
  if [ $rc -eq "$want" ] && grep -q -- "$msg" "$T/out" && [ "$n" -eq 1 ] && [ ! -e "$T/bad.safetensors" ] \
     && [ -z "$(ls "$T" | grep 'tmp-')" ]; then
    ok "$name: exit $want, one message naming the file, nothing written ($(grep -o 'error: .*' "$T/out" | cut -c1-110))"
  else notok "$name (exit $rc, $n messages): $(tail -3 "$T/out")"; fi
}
bad "alone: corrupted checkpoint" 3 "$T/flip.h5" "flip.h5: checksum mismatch" env $NOMPI
bad "alone: not an HDF5 file" 3 "$T/junk.h5" "junk.h5 is not an HDF5 file" env $NOMPI
bad "alone: an HDF5 file that is no checkpoint" 3 "$T/w/conn/index.h5" "index.h5 is not a complete checkpoint" env $NOMPI
bad "alone: missing checkpoint" 4 "$T/none.h5" "none.h5" env $NOMPI
bad "2 ranks: corrupted checkpoint" 3 "$T/flip.h5" "flip.h5: checksum mismatch" $MPIRUN 2
bad "2 ranks: not an HDF5 file" 3 "$T/junk.h5" "junk.h5 is not an HDF5 file" $MPIRUN 2
"$BGFM" export "$CK" --out "$T/nodir/x.safetensors" 2>"$T/err"; rc=$?
check "alone: an unwritable output is exit 4 naming it" sh -c "[ $rc -eq 4 ] && grep -q 'nodir/x.safetensors' '$T/err'"
expect_rc "alone: usage errors are exit 2" 2 "$BGFM" export "$CK" 2>/dev/null
expect_rc "export --help alone" 0 sh -c "'$BGFM' export --help | grep -q 'usage: bgfm export'"
