#!/usr/bin/env bash
# h5io on 3 and 4 ranks: collective row writes where ranks own 0..3 rows.
source "$(dirname "$0")/../lib/tap.sh"
for np in 3 4; do
  $MPIRUN $np "$ROOT/${BGFM_BUILD:-build}/tests/test_h5io" >"$T/out$np" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && ! grep -q "^not ok" "$T/out$np"; then ok "h5io collective writes on $np ranks"
  else notok "h5io collective writes on $np ranks (rc $rc)"; sed 's/^/#   /' "$T/out$np" | tail -20; fi
done
