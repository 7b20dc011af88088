#!/usr/bin/env bash
# pretrain_ckpt.sh: parallel checkpoints and data-parallel helpers on 2, 3 and 4 ranks
# (tests/unit/test_ckpt.c): round trip of a collectively written checkpoint, checksums
# independent of the rank count, a flipped byte detected, the global NT-Xent (row-
# sharded, and the replicated benchmark variant) equal to layer_ntxent on the whole
# batch: loss identical on every rank, each rank's gradient rows, the workspace linear
# in the batch (uneven slices, ranks without graphs, one graph). 1 rank: the unit suite.
source "$(dirname "$0")/../lib/tap.sh"
for np in 2 3 4; do
  env -u CMOCKA_MESSAGE_OUTPUT timeout 60 $MPIRUN $np "$ROOT/${BGFM_BUILD:-build}/tests/test_ckpt" >"$T/out$np" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && [ "$(grep -c 'PASSED  \] [0-9]* test' "$T/out$np")" -eq $np ] && ! grep -q 'FAILED' "$T/out$np"; then ok "checkpoints and global NT-Xent on $np ranks"
  else notok "checkpoints and global NT-Xent on $np ranks (rc $rc)"; sed 's/^/#   /' "$T/out$np" | tail -20; fi
done
