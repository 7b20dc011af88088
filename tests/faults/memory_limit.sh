#!/usr/bin/env bash
# memory_limit.sh: max_memory_per_rank. A malformed size is a usage error (2); a limit
# below a stage's own estimate stops that stage with exit 5 before its big allocations,
# the message giving the estimate, the limit and what to change, earlier complete
# outputs untouched and no output of the failed stage; a generous limit runs as before.
# Each estimate is an upper bound of the peak RSS measured on the same run.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 6 --volumes 40
mk() {  # mk FILE LIMIT-LINE
PIPE_NAME=memtest PIPE_TOP="$2" pipeline_yaml "$1" "$T/w" "{windows: {length: 20, stride: 10}}" "{name: pre, uses: pretrain, with: {epochs: 1, batch_size: 4, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}"
}
sums() { (cd "$T/w" && find "$@" -type f | sort | xargs sha256sum); }
mk "$T/bad.yaml" 'max_memory_per_rank: 4 parsecs'
"$BGFM" validate "$T/bad.yaml" >/dev/null 2>"$T/err"; rc=$?
check "malformed max_memory_per_rank: exit 2 naming the key and position" test $rc -eq 2 -a -n "$(grep "bad.yaml:4:.*not a memory size.*max_memory_per_rank" "$T/err")"
mk "$T/tiny.yaml" 'max_memory_per_rank: 1MiB'
"$BGFM" run "$T/tiny.yaml" --quiet >/dev/null 2>"$T/err"; rc=$?
check "parcellate over the limit: exit 5" test $rc -eq 5
check "... message: estimate, limit, what to change" grep -q "stage 'parc' would need about .* per rank (.*), more than max_memory_per_rank = 1.0 MiB in .*tiny.yaml; use more ranks" "$T/err"
check "... no parcellate output, no partial folder" test ! -e "$T/w/parc" -a ! -e "$T/w/.parc.partial"
pest=$(sed -n 's/.*would need about \([0-9.]*\) MiB.*/\1/p' "$T/err")
# the limit is not part of any fingerprint: the stages that fit are done, conn and
# pretrain are then checked one by one with the limit below their estimate
mk "$T/ok.yaml" 'max_memory_per_rank: 64GiB'
expect_rc "a generous limit: the whole pipeline runs (exit 0)" 0 timeout 120 "$BGFM" run "$T/ok.yaml" --quiet
before=$(sums parc conn)
timeout 60 "$BGFM" run "$T/tiny.yaml" --from conn --quiet >/dev/null 2>"$T/err"; rc=$?
check "connectivity over the limit (--from conn): exit 5, says lower graphs_per_shard" test $rc -eq 5 -a -n "$(grep "stage 'conn' would need about.*shard buffers.*lower graphs_per_shard" "$T/err")"
cest=$(sed -n 's/.*would need about \([0-9.]*\) MiB.*/\1/p' "$T/err")
check "... parc output intact, conn output untouched (the old one stays until a new one is complete)" test "$before" = "$(sums parc conn)"
pre_before=$(sums pre)
timeout 60 "$BGFM" run "$T/tiny.yaml" --from pre --quiet >/dev/null 2>"$T/err"; rc=$?
check "pretrain over the limit (--from pre): exit 5, names parameters and batch_size" test $rc -eq 5 -a -n "$(grep "stage 'pre' would need about.*parameters x 16 B.*batch_size" "$T/err")"
xest=$(sed -n 's/.*would need about \([0-9.]*\) MiB.*/\1/p' "$T/err")
check "... earlier outputs and the previous pretrain output intact" test "$before" = "$(sums parc conn)" -a "$pre_before" = "$(sums pre)"
# estimates vs the peak RSS of the successful run (metrics.jsonl, engine lines); not
# under AddressSanitizer (make check), whose shadow memory and quarantine inflate RSS
if [ "${BGFM_BUILD:-build}" = build-san ]; then
  ok "# SKIP estimates vs peak RSS: RSS is not comparable under AddressSanitizer"
else
check "estimates ($pest, $cest, $xest MiB) bound the measured peak RSS" $PY - "$T/w/metrics.jsonl" "$pest" "$cest" "$xest" <<'PYEOF'
import sys, json
est = dict(zip(["parc", "conn", "pre"], map(float, sys.argv[2:5])))
peak = {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("event") == "stage" and d.get("status") == 0:
        peak[d["stage"]] = max(d["peak_rss_mib"])
for k in est:
    assert peak[k] <= est[k], (k, peak[k], est[k])
print("# peak MiB", peak, "estimates", est)
PYEOF
fi
