#!/usr/bin/env bash
# pop_auto.sh: `pop_rank: auto` (docs/model.md section 11) through `bgfm run` on 1 and 2
# ranks, on 72 people of 16 regions (5 windows each) whose FC shares 3 person-level
# factors (tiny_bids.py --factors 3): the rank each atlas gets and the head it fits equal
# an independent numpy/scipy reading of the held-out rule (tests/reference/pop_fit.py);
# the model's head is narrowed to that rank (final.h5, the probe's embedding width), the
# log says what was chosen, the same bits on 1 and 2 ranks; with 40 people the rule
# cannot split the people into halves with a bulk, says so, and falls back to 8. With
# weaker factors the log's mean counts up the ladder (not whole numbers) = numpy's; with
# eight weak factors the count falls steadily as the threshold rises: no gap (the plateau rule).
# embedding: auto reads the head alone after a gap, pcs+pop without one (the readout's 8
# principal axes, the head's 8 directions and the FC's 4 principal axes, = numpy), and
# encoder+pop with a fixed pop_rank. With a site shift of the FC, the sites are a gap unless the head is
# centred on them (pop_site); with one site's own person-level variation, its directions
# lead and are counted unless the sites' spreads are harmonised (pop_site: harmonise);
# pop_site: auto harmonises there (the same bits as harmonise) and centres where the
# sites only shift the FC (the same bits as centre). Two people whose FC is their own stand
# apart, are named in the log and left out of the fit (= numpy's fit without them).
# pop_solver: randomised gives the same rank and head (= numpy's exact fit, within 1e-6
# of the exact solver's).
source "$(dirname "$0")/../lib/tap.sh"
to() { local f=$1; shift; "$@" >"$f" 2>&1; }  # to FILE CMD...: CMD's output into FILE
# a second run on a dataset starts from the first's parc and conn (share_upstream,
# tests/lib/pipeline.sh): the parcellation of a dataset is checked once
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/d" --subjects 72 --volumes 30 --parcels 16 --factors 3 \
  --seed 4 >/dev/null || { notok "dataset"; exit 1; }
PRE="{name: pre, uses: pretrain, with: {epochs: 1, batch_size: 16, hidden: 8, heads: 2, ffn: 16, proj: 8, n_max: 0, pop_rank: auto, embedding: pop}}"
PRB="{name: probe, uses: probe, with: {folds: 3, repeats: 1, few_shot: [all]}}"
PIPE_NAME=pa PIPE_SEED=3 pipeline_yaml "$T/p.yaml" "$T/w" "{windows: {length: 10, stride: 5}}" "$PRE" "$PRB"
for np in 1 2; do
  rm -rf "$T/w/pre" "$T/w/probe" "$T/w/.pre.partial"
  expect_rc "pop_rank auto: run on $np ranks" 0 to "$T/o$np" $MPIRUN $np "$BGFM" run "$T/p.yaml"
  cp -r "$T/w/pre" "$T/pre$np" 2>/dev/null
  cp "$T/w/probe/report/probe.json" "$T/probe$np.json" 2>/dev/null
done
check "the log names the held-out count and the rank chosen" bash -c "
  grep -qE 'population head of tiny: pop_rank auto: directions standing out on held-out halves, mean of 16 fits, at each multiple of the bulk: [0-9.]+ at 1.2x, [0-9.]+ at 1.4x, .* at 3x: a gap after 3 \(the count holds from [0-9.]+x to [0-9.]+x\)' '$T/o1' &&
  grep -q 'pop_rank auto: rank 3 for every atlas (the largest gap of the atlases' '$T/o1'"
check "rank and head = numpy/scipy's held-out rule (tests/reference/pop_fit.py)" \
  $PY "$ROOT/tests/reference/pop_fit.py" "$T/pre2/final.h5" "$T/w/conn"
check "the head is narrowed: 3 rows (the factors planted), the probe reads 3 numbers, 1 and 2 ranks the same bits" $PY - "$T" <<'PYEOF'
import h5py, json, sys
T = sys.argv[1]
a = h5py.File(f"{T}/pre1/final.h5", "r")["model"]
b = h5py.File(f"{T}/pre2/final.h5", "r")["model"]
assert int(a.attrs["pop_rank"]) == 3, int(a.attrs["pop_rank"])
assert a["pop/tiny/W"].shape == (3, 120) and a["pop/tiny/b"].shape == (3,)
for k in ("pop/tiny/W", "pop/tiny/b"):
    assert a[k][()].tobytes() == b[k][()].tobytes(), k
p = json.load(open(f"{T}/probe1.json"))
assert p["pop_rank"] == 3, p["pop_rank"]
PYEOF
# two atlases on 3 ranks (the same atlas file under a second name): each atlas's head is
# fitted on one rank (tiny on rank 0, tiny_b on rank 1; rank 2 only sends its rows) and
# sent to the others: both heads = numpy/scipy's, the same bits as each other and as the
# one-atlas runs above, and the log names both
two_atlases "$T/p.yaml" "$T/p2.yaml" "$T/w2"
expect_rc "two atlases: run on 3 ranks" 0 to "$T/o2a" $MPIRUN 3 "$BGFM" run "$T/p2.yaml"
check "two atlases on 3 ranks: each head fitted on its own rank = numpy/scipy's, the same bits as the one-atlas head on 1 rank, logged for both" bash -c "
  $PY '$ROOT/tests/reference/pop_fit.py' '$T/w2/pre/final.h5' '$T/w2/conn' >'$T/r2a' 2>&1 &&
  $PY - '$T' <<'PYEOF' &&
import h5py, sys
T = sys.argv[1]
a = h5py.File(f'{T}/pre1/final.h5', 'r')['model']
b = h5py.File(f'{T}/w2/pre/final.h5', 'r')['model']
for k in ('W', 'b'):
    x = a['pop/tiny/' + k][()].tobytes()
    assert b['pop/tiny/' + k][()].tobytes() == x, 'tiny ' + k
    assert b['pop/tiny_b/' + k][()].tobytes() == x, 'tiny_b ' + k
PYEOF
  grep -q 'population head of tiny: pop_rank auto' '$T/o2a' && grep -q 'population head of tiny_b: pop_rank auto' '$T/o2a'"
# pop_solver: randomised (subspace iteration instead of the Gram matrix's eigensolver; auto
# uses it past 4096 graphs an atlas), on 72 people of 40 regions (360 graphs of 780 FC
# entries: wider than the solver's block of 316 columns, so it iterates): the same rank
# as the exact solver (auto), the head = numpy/scipy's exact fit and within 1e-5 of the
# exact solver's, the log says so
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/dwide" --subjects 72 --volumes 30 --parcels 40 --factors 3 \
  --seed 4 >/dev/null || notok "dataset of 40 regions"
for sv in auto randomised; do
  P=${PRE/pop_rank: auto,/pop_rank: auto, pop_solver: $sv,}
  DATA=$T/dwide PIPE_NAME=pa PIPE_SEED=3 pipeline_yaml "$T/s_$sv.yaml" "$T/s_$sv" "{windows: {length: 10, stride: 5}}" "$P"
  [ $sv = randomised ] && mkdir -p "$T/s_$sv" && share_upstream "$T/s_$sv" "$T/s_auto"
  expect_rc "40 regions, pop_solver $sv: run on 2 ranks" 0 to "$T/os_$sv" $MPIRUN 2 "$BGFM" run "$T/s_$sv.yaml"
done
check "pop_solver randomised: rank 3 as with the exact solver, the head = numpy/scipy's exact fit (pop_fit.py), the log names the solver" bash -c "
  $PY '$ROOT/tests/reference/pop_fit.py' '$T/s_randomised/pre/final.h5' '$T/s_randomised/conn' &&
  grep -q 'pop_rank auto: rank 3 for every atlas' '$T/os_randomised' && grep -q 'pop_rank auto: rank 3 for every atlas' '$T/os_auto' &&
  grep -qE 'population head of tiny: principal subspace randomised \(pop_solver; a block of 316, [1-9][0-9]* iterations' '$T/os_randomised' &&
  ! grep -q 'principal subspace randomised' '$T/os_auto'"
check "pop_solver randomised: the head within 1e-5 of the exact solver's (the same graphs)" $PY - "$T" <<'PYEOF'
import h5py, numpy as np, sys
T = sys.argv[1]
a = h5py.File(f"{T}/s_auto/pre/final.h5", "r")["model"]
b = h5py.File(f"{T}/s_randomised/pre/final.h5", "r")["model"]
for k in ("pop/tiny/W", "pop/tiny/b"):
    x, y = a[k][()].astype(float), b[k][()].astype(float)
    err = np.abs(x - y).max() / np.abs(x).max()
    print("# %s %s: largest difference %.1e of the largest entry" % (k, x.shape, err))
    assert x.shape == y.shape and err < 1e-5, (k, err)
PYEOF
# weaker factors: the four held-out counts differ, so the halves themselves are checked
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/dw" --subjects 72 --volumes 30 --parcels 16 --factors 3 \
  --factor-size 0.6 --seed 4 >/dev/null || notok "dataset of weaker factors"
PRA=${PRE/embedding: pop/embedding: auto}
DATA=$T/dw PIPE_NAME=pw PIPE_SEED=3 pipeline_yaml "$T/w.yaml" "$T/ww" "{windows: {length: 10, stride: 5}}" "$PRA"
expect_rc "pop_rank auto, weaker factors: run" 0 to "$T/ow" $MPIRUN 1 "$BGFM" run "$T/w.yaml"
$PY "$ROOT/tests/reference/pop_fit.py" "$T/ww/pre/final.h5" "$T/ww/conn" >"$T/rw" 2>&1
rc=$?
# numpy's mean counts up the ladder, as the log writes them
ladder() { sed -n 's/.*held-out means \([0-9. ]*\), reproducibility.*/\1/p' "$1" | awk '{split("1.2 1.4 1.65 1.9 2.2 2.6 3", c, " "); for (i = 1; i <= NF; i++) printf "%s%s at %sx", (i > 1 ? ", " : ""), $i, c[i]}'; }
held=$(ladder "$T/rw")
check "weaker factors: = numpy/scipy, the same mean counts up the ladder in the log, not all whole numbers" bash -c "
  echo '# numpy: $held'
  [ $rc -eq 0 ] && [ -n '$held' ] && echo '$held' | grep -qE '[0-9]\.([1-9][0-9]|0[1-9])' &&
  grep -qF 'at each multiple of the bulk: $held: a gap after' '$T/ow'"
# eight weak factors: the count falls steadily up the ladder (no plateau): no gap, pcs+pop
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/dr" --subjects 72 --volumes 30 --parcels 16 --factors 8 \
  --factor-size 0.5 --seed 4 >/dev/null || notok "dataset of many weak factors"
DATA=$T/dr PIPE_NAME=pr PIPE_SEED=3 pipeline_yaml "$T/r.yaml" "$T/wr" "{windows: {length: 10, stride: 5}}" "$PRA"
expect_rc "pop_rank auto, eight weak factors: run" 0 to "$T/or" $MPIRUN 1 "$BGFM" run "$T/r.yaml"
$PY "$ROOT/tests/reference/pop_fit.py" "$T/wr/pre/final.h5" "$T/wr/conn" >"$T/rr" 2>&1
rc=$?
held=$(ladder "$T/rr")
repro=$(sed -n 's/.*, reproducibility \([0-9. ]*\) (peak 0), count 0$/\1/p' "$T/rr")
check "... = numpy/scipy (no gap: rank 8), the log's counts are numpy's and say why" bash -c "
  echo '# numpy: $held'
  [ $rc -eq 0 ] && grep -q 'count 0$' '$T/rr' && [ -n '$held' ] &&
  grep -qF 'at each multiple of the bulk: $held: no gap (no plateau: the count falls steadily' '$T/or' &&
  grep -q 'pop_rank auto: rank 8 for every atlas (no atlas shows a gap: the default' '$T/or' && grep -q 'embedding auto: pcs+pop' '$T/or'"
check "... nor do the two halves find the same directions: the log's reproducibility is numpy's, no peak of 0.7" bash -c "
  echo '# numpy: $repro'
  [ -n '$repro' ] && grep -qF '; reproducible on both halves, k = 1 .. 12: $repro: no peak of 0.7' '$T/or'"
# 40 people: halves of 20, too few for a bulk of 16 directions
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/d40" --subjects 40 --volumes 30 --parcels 16 --factors 3 \
  --seed 4 >/dev/null || notok "dataset of 40"
DATA=$T/d40 PIPE_NAME=pb PIPE_SEED=3 pipeline_yaml "$T/q.yaml" "$T/w40" "{windows: {length: 10, stride: 5}}" "$PRA"
expect_rc "pop_rank auto on 40 people: run" 0 to "$T/o40" $MPIRUN 2 "$BGFM" run "$T/q.yaml"
check "40 people: the log says the rule could not measure, rank 8" bash -c "
  grep -q 'population head of tiny: pop_rank auto: too few people .*need 66 scans' '$T/o40' &&
  grep -q 'pop_rank auto: rank 8 for every atlas (no atlas shows a gap: the default)' '$T/o40'"
check "40 people: 8 rows, = numpy/scipy" $PY "$ROOT/tests/reference/pop_fit.py" "$T/w40/pre/final.h5" "$T/w40/conn"
# embedding: auto: the head alone where the rule finds a gap (the weaker factors: rank 3),
# the readout's principal axes and the head (8 directions, 4 principal axes) where it
# does not (40 people)
check "embedding auto: pop after a gap, pcs+pop without one (final.h5 and the log)" bash -c "
  $PY -c \"import h5py, sys
for f, want, r, pcs in ((sys.argv[1], 'pop', 3, None), (sys.argv[2], 'pcs+pop', 12, 8)):
    m = h5py.File(f, 'r')['model']
    a = m.attrs
    e = a['embedding'].decode() if isinstance(a['embedding'], bytes) else a['embedding']
    assert e == want and int(a['pop_rank']) == r, (f, e, int(a['pop_rank']))
    assert (pcs is None and 'pcs' not in a and 'pcs' not in m) or \\
        (int(a['pcs']) == pcs and m['pcs/tiny/W'].shape == (pcs, 8) and m['pcs/tiny/b'].shape == (pcs,)), f
\" '$T/ww/pre/final.h5' '$T/w40/pre/final.h5' &&
  grep -q 'embedding auto: pop (the head alone' '$T/ow' && grep -q 'embedding auto: pcs+pop (no direction' '$T/o40'"
# embedding: pcs+pop asked for: the rule's rank (a gap of 3 with the weaker factors) and
# the FC's 4 principal axes, the readout's 8 axes; pop_rank 0 with it is a config error
PRP=${PRE/embedding: pop/embedding: pcs+pop}
DATA=$T/dw PIPE_NAME=pp PIPE_SEED=3 pipeline_yaml "$T/pp.yaml" "$T/wp" "{windows: {length: 10, stride: 5}}" "$PRP"
share_upstream "$T/wp" "$T/ww"
expect_rc "embedding pcs+pop, weaker factors: run" 0 to "$T/opp" $MPIRUN 2 "$BGFM" run "$T/pp.yaml"
check "... the gap's 3 directions and 4 principal axes (12 -> 7 rows), 8 readout axes, = numpy/scipy" bash -c "
  grep -q 'embedding pcs+pop: pcs+pop (the encoder' '$T/opp' &&
  $PY -c \"import h5py, sys
m = h5py.File(sys.argv[1], 'r')['model']
assert int(m.attrs['pop_rank']) == 7 and int(m.attrs['pcs']) == 8 and m['pcs/tiny/W'].shape == (8, 8), dict(m.attrs)
\" '$T/wp/pre/final.h5' && $PY '$ROOT/tests/reference/pop_fit.py' '$T/wp/pre/final.h5' '$T/wp/conn' >'$T/rpp' 2>&1"
PR0=${PRE/pop_rank: auto, embedding: pop/pop_rank: 0, embedding: pcs+pop}
DATA=$T/dw PIPE_NAME=p0 PIPE_SEED=3 pipeline_yaml "$T/p0.yaml" "$T/w0" "{windows: {length: 10, stride: 5}}" "$PR0"
expect_rc "embedding pcs+pop with pop_rank 0: a configuration error (exit 2)" 2 to "$T/op0" $MPIRUN 1 "$BGFM" run "$T/p0.yaml"
check "... naming the file, line and key, and the head it needs" grep -qE 'p0.yaml:[0-9]+:[0-9]+: stage .pre.: embedding pcs\+pop needs the population head' "$T/op0"
# embedding: auto with a fixed pop_rank: encoder+pop, as before pop_rank: auto existed
sed 's/pop_rank: auto, embedding: pop/pop_rank: 8, embedding: auto/; s/probe, uses: probe.*/probe, uses: probe}/' \
  "$T/p.yaml" | sed '/name: probe/d' >"$T/fixed.yaml"
sed -i "s|workdir: .*|workdir: $T/wf|" "$T/fixed.yaml"
share_upstream "$T/wf" "$T/w"
expect_rc "embedding auto with pop_rank 8: run" 0 to "$T/ofixed" $MPIRUN 1 "$BGFM" run "$T/fixed.yaml"
check "... gives encoder+pop with 8 rows, and no held-out count is measured" bash -c "
  $PY -c \"import h5py, sys
a = h5py.File(sys.argv[1], 'r')['model'].attrs
e = a['embedding'].decode() if isinstance(a['embedding'], bytes) else a['embedding']
assert e == 'encoder+pop' and int(a['pop_rank']) == 8, (e, int(a['pop_rank']))\" '$T/wf/pre/final.h5' &&
  ! grep -q 'pop_rank auto' '$T/ofixed'"
# pop_site (docs/model.md section 11, "Sites"): 72 people at 3 sites whose FC differs by
# site only (tiny_bids.py --site-shift, no person-level factor). Fitted on the FC as it is
# (pop_site: none) the 2 site directions stand out as a gap and embedding: auto would read
# them alone; centred on the sites (the default) no direction stands out: rank 8,
# pcs+pop. Both heads = numpy/scipy's (tests/reference/pop_fit.py).
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/ds" --subjects 72 --volumes 30 --parcels 16 --sites 3 \
  --site-shift 1 --seed 4 >/dev/null || notok "dataset of 3 sites"
for ps in default none auto centre; do
  PRS=$PRA
  [ $ps != default ] && PRS=${PRA/pop_rank: auto,/pop_rank: auto, pop_site: $ps,}
  DATA=$T/ds PIPE_NAME=ps PIPE_SEED=3 pipeline_yaml "$T/s_$ps.yaml" "$T/ws_$ps" "{windows: {length: 10, stride: 5}}" "$PRS"
  [ $ps != default ] && share_upstream "$T/ws_$ps" "$T/ws_default"
  expect_rc "3 sites, pop_site $ps: run" 0 to "$T/os_$ps" $MPIRUN 2 "$BGFM" run "$T/s_$ps.yaml"
  $PY "$ROOT/tests/reference/pop_fit.py" "$T/ws_$ps/pre/final.h5" "$T/ws_$ps/conn" >"$T/rs_$ps" 2>&1 || notok "3 sites, pop_site $ps: = numpy/scipy ($(tail -1 "$T/rs_$ps"))"
done
check "3 sites, pop_site none: the 2 site directions are a gap (rank 2, the head alone)" bash -c "
  grep -q 'a gap after 2' '$T/os_none' && grep -q 'pop_rank auto: rank 2 for every atlas' '$T/os_none' &&
  grep -q 'embedding auto: pop (the head alone' '$T/os_none' && grep -q 'count 2$' '$T/rs_none'"
check "3 sites, centred (the default): no gap, rank 8, pcs+pop; the log and numpy say 3 sites" bash -c "
  grep -q 'no gap (fewer than 2)' '$T/os_default' && grep -q 'pop_rank auto: rank 8 for every atlas' '$T/os_default' &&
  grep -q 'embedding auto: pcs+pop' '$T/os_default' && grep -q 'scans with 2+ windows, centred on 3 sites; at most ' '$T/os_default' &&
  grep -q 'centred on 3 sites, 8 of 8 directions' '$T/rs_default'"
check "... and the log says how many people the rule measured on, and what more of them do (not after a gap, nor unmeasured)" bash -c "
  grep -q 'no factor shared by people stood out among the 72 training read; weak ones stand out among more people' '$T/os_default' &&
  ! grep -q 'no factor shared by people' '$T/os_none' && ! grep -q 'no factor shared by people' '$T/o40'"
# pop_site: harmonise (docs/model.md section 11, "Sites"; results 12t): 120 people at 3
# sites sharing 3 factors, and the first site's people alone differ along one more
# coupling pattern (tiny_bids.py --site-own; in FC it moves along two directions, its
# linear and quadratic parts). Centred, the rule counts those too and the head's leading
# direction is the first site's own (its people spread along it more than 2.5 times the
# sites' mean); harmonised, fewer directions stand out, the leading ones spread alike in
# every site (none above twice the mean), and the head = numpy/scipy's harmonised fit.
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/dh" --subjects 120 --volumes 30 --parcels 16 --factors 3 \
  --sites 3 --site-own 2 --seed 4 >/dev/null || notok "dataset of a site's own variation"
for ps in centre harmonise auto; do
  PRS=${PRA/pop_rank: auto,/pop_rank: auto, pop_site: $ps,}
  DATA=$T/dh PIPE_NAME=ph PIPE_SEED=3 pipeline_yaml "$T/h_$ps.yaml" "$T/wh_$ps" "{windows: {length: 10, stride: 5}}" "$PRS"
  [ $ps != centre ] && share_upstream "$T/wh_$ps" "$T/wh_centre"
  expect_rc "a site's own variation, pop_site $ps: run" 0 to "$T/oh_$ps" $MPIRUN 2 "$BGFM" run "$T/h_$ps.yaml"
  $PY "$ROOT/tests/reference/pop_fit.py" "$T/wh_$ps/pre/final.h5" "$T/wh_$ps/conn" >"$T/rh_$ps" 2>&1 || notok "pop_site $ps: = numpy/scipy ($(tail -1 "$T/rh_$ps"))"
done
# pop_site_shrink: harmonised with each site's covariance shrunk by 0.1, not the default
# 0.5: = numpy/scipy at that shrinkage, and another head than the default's
PRS=${PRA/pop_rank: auto,/pop_rank: auto, pop_site: harmonise, pop_site_shrink: 0.1,}
DATA=$T/dh PIPE_NAME=ph PIPE_SEED=3 pipeline_yaml "$T/h_s01.yaml" "$T/wh_s01" "{windows: {length: 10, stride: 5}}" "$PRS"
share_upstream "$T/wh_s01" "$T/wh_centre"
expect_rc "a site's own variation, harmonised at pop_site_shrink 0.1: run" 0 to "$T/oh_s01" $MPIRUN 2 "$BGFM" run "$T/h_s01.yaml"
$PY "$ROOT/tests/reference/pop_fit.py" "$T/wh_s01/pre/final.h5" "$T/wh_s01/conn" >"$T/rh_s01" 2>&1 || notok "pop_site_shrink 0.1: = numpy/scipy ($(tail -1 "$T/rh_s01"))"
check "... = numpy/scipy at that shrinkage, and not the head of shrinkage 0.5" $PY -c "
import h5py, sys
a, b = (h5py.File(p, 'r')['model/pop/tiny/W'][()] for p in sys.argv[1:])
assert a.shape != b.shape or abs(a - b).max() > 1e-3, abs(a - b).max()" "$T/wh_s01/pre/final.h5" "$T/wh_harmonise/pre/final.h5"
check "centred: the log warns once (2 ranks) that direction 1 is the first site's own and names pop_site: harmonise; not where sites only shift the FC" bash -c "
  grep -qE 'population head of tiny: (9[0-9]|8[0-9])% of how people differ along direction 1 is within one site \('\\''site-1'\\'', 33% of the scans\).*pop_site: harmonise chooses' '$T/oh_centre' &&
  [ \$(grep -c 'of how people differ along direction 1' '$T/oh_centre') = 1 ] &&
  ! grep -q 'of how people differ along direction' '$T/os_default'"
check "harmonised: = numpy/scipy's harmonised fit, and the log says so" bash -c "
  grep -q 'centred and harmonised on 3 sites, ' '$T/rh_harmonise' &&
  grep -q 'scans with 2+ windows, centred and harmonised on 3 sites; at most ' '$T/oh_harmonise'"
check "centred: the head's log line gives the largest share within one site of a kept direction, the warning's" bash -c "
  w=\$(grep -oE '[0-9]+% of how people differ along direction 1 is within' '$T/oh_centre' | grep -oE '^[0-9]+') &&
  grep -q \"at most \$w% of how people differ along a direction lies within one site (direction 1)\" '$T/oh_centre'"
check "centred, the first site's own direction leads and is counted; harmonised, fewer stand out and the leading ones spread alike in every site" $PY - "$T" <<'PYEOF'
import h5py, numpy as np, re, sys
T = sys.argv[1]
s = lambda x: x.decode() if isinstance(x, bytes) else str(x)
def spread(mode):
    """per head direction: each site's variance of the people's mean features over the
    sites' mean variance; and the rule's count from the log"""
    f = h5py.File(f"{T}/wh_{mode}/pre/final.h5", "r")["model"]
    W, b = f["pop/tiny/W"][()], f["pop/tiny/b"][()]
    mu, sd = f["norm/tiny/mean"][()], f["norm/tiny/std"][()]
    c = f"{T}/wh_{mode}/conn"
    idx = h5py.File(c + "/index.h5", "r")
    shards = [s(x) for x in idx["shards"][()]]
    X = []
    for g in range(len(idx["graphs/atlas"])):
        C = h5py.File(c + "/" + shards[idx["graphs/shard"][g]], "r")["graphs/tiny/fc"][idx["graphs/row"][g]]
        X.append(((C - mu) / sd)[np.triu_indices(C.shape[0], 1)])
    F = np.array(X) @ W.T + b
    subj, site = idx["graphs/subject"][()], np.array([s(x) for x in idx["graphs/site"][()]])
    subs = sorted(set(subj))
    M = np.array([F[subj == p].mean(0) for p in subs])
    st = np.array([site[subj == p][0] for p in subs])
    v = np.array([[M[st == k, j].var() for k in sorted(set(st))] for j in range(W.shape[0])])
    count = int(re.search(r"rank (\d+) for every atlas", open(f"{T}/oh_{mode}").read()).group(1))
    return v / v.mean(1, keepdims=True), count
cv, cc = spread("centre")
hv, hc = spread("harmonise")
print(f"# centred: count {cc}, leading direction's spread by site {np.round(cv[0], 2)}")
print(f"# harmonised: count {hc}, largest spread by site of the leading 3 {hv[:3].max():.2f}")
assert cc >= 4 and cv[0].max() > 2.5, (cc, cv[0])
assert hc < cc and hv[:3].max() < 2.0, (hc, hv[:3])
PYEOF
check "pop_site auto: harmonised where a kept direction is one site's own (the log says why), the same bits as harmonise; centred where none is, the same bits as centre; final.h5 says which (attribute pop_site)" bash -c "
  grep -qE 'pop_site auto: harmonise \(centred, (9[0-9]|8[0-9])% of how people differ along direction 1 of tiny is within one site' '$T/oh_auto' &&
  ! grep -q 'pop_site auto' '$T/os_auto' &&
  $PY -c \"import h5py, sys
for a, b in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    x, y = h5py.File(a, 'r')['model'], h5py.File(b, 'r')['model']
    for k in ('pop/tiny/W', 'pop/tiny/b'):
        assert x[k][()].tobytes() == y[k][()].tobytes(), (a, k)
    assert x.attrs['pop_site'] == y.attrs['pop_site'], (a, x.attrs['pop_site'])
assert h5py.File(sys.argv[1], 'r')['model'].attrs['pop_site'] in (b'harmonise', 'harmonise')\" '$T/wh_auto/pre/final.h5' '$T/wh_harmonise/pre/final.h5' '$T/ws_auto/pre/final.h5' '$T/ws_centre/pre/final.h5'"
# two people whose FC is their own (tiny_bids.py --apart 2) among 72 of three weaker
# factors: at pop_outlier_z 2.8 (in 5 windows of 10 volumes their distance lies 3.0 and 3.6
# robust deviations above the typical one; the next person's 2.3) they stand apart and are
# left out of the head's fit, the log names them, and the head and rank = numpy/scipy's fit
# without them (pop_fit.py reads the same rule); at 0 they are kept, no line, = numpy's fit
# with them
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/da" --subjects 72 --volumes 30 --parcels 16 --factors 3 \
  --factor-size 0.6 --seed 4 --apart 2 --apart-size 8 >/dev/null || notok "dataset with two people apart"
for z in 2.8 0; do
  P=${PRE/pop_rank: auto,/pop_rank: auto, pop_outlier_z: $z,}
  DATA=$T/da PIPE_NAME=pa PIPE_SEED=3 pipeline_yaml "$T/a_$z.yaml" "$T/wa_$z" "{windows: {length: 10, stride: 5}}" "$P"
  [ $z = 0 ] && share_upstream "$T/wa_$z" "$T/wa_2.8"
  expect_rc "two people apart, pop_outlier_z $z: run on 2 ranks" 0 to "$T/oa_$z" $MPIRUN 2 "$BGFM" run "$T/a_$z.yaml"
  $PY "$ROOT/tests/reference/pop_fit.py" "$T/wa_$z/pre/final.h5" "$T/wa_$z/conn" >"$T/ra_$z" 2>&1 ||
    notok "two people apart, pop_outlier_z $z: = numpy/scipy ($(tail -1 "$T/ra_$z"))"
done
check "two apart: the log names them (sub-71, sub-72) once, as numpy finds them; at pop_outlier_z 0 no line and numpy finds none" bash -c "
  grep -qE 'population head of tiny: 2 of the 72 people seen twice or more stand apart from the rest .*: sub-7[12] \(z [0-9.]+\), sub-7[12] \(z [0-9.]+\); left out' '$T/oa_2.8' &&
  [ \$(grep -c 'stand apart from the rest' '$T/oa_2.8') = 1 ] &&
  grep -q 'pop_fit: 2 of 72 scans stand apart' '$T/ra_2.8' &&
  ! grep -q 'stand apart' '$T/oa_0' '$T/ra_0'"
# two people whose own FC lies along one direction each (tiny_bids.py --apart-rank 1, as
# motion leaves it) by what they hold (pop_outlier_share 0.5, the distance rule off): each
# holds about 80 % of the leading direction, they are left out one at a time and named, the
# rule then finds the three factors, and the head and rank = numpy/scipy's fit without them
# (pop_fit.py reads the same loop)
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/ds1" --subjects 72 --volumes 30 --parcels 16 --factors 3 \
  --factor-size 0.6 --seed 4 --apart 2 --apart-size 16 --apart-rank 1 >/dev/null ||
  notok "dataset with two people of one direction each"
P=${PRE/pop_rank: auto,/pop_rank: auto, pop_outlier_z: 0, pop_outlier_share: 0.5,}
DATA=$T/ds1 PIPE_NAME=pa PIPE_SEED=3 pipeline_yaml "$T/a_s.yaml" "$T/wa_s" "{windows: {length: 10, stride: 5}}" "$P"
expect_rc "two people apart, pop_outlier_share 0.5: run on 2 ranks" 0 to "$T/oa_s" $MPIRUN 2 "$BGFM" run "$T/a_s.yaml"
$PY "$ROOT/tests/reference/pop_fit.py" "$T/wa_s/pre/final.h5" "$T/wa_s/conn" >"$T/ra_s" 2>&1 ||
  notok "two people apart, pop_outlier_share 0.5: = numpy/scipy ($(tail -1 "$T/ra_s"))"
check "two who hold a direction: the log names them (sub-71, sub-72) once with their shares, as numpy finds them; no distance line" bash -c "
  grep -qE 'population head of tiny: 2 people hold a leading direction alone .*: sub-7[12] \([0-9]+% of direction [0-9]\), sub-7[12] \([0-9]+% of direction [0-9]\); left out' '$T/oa_s' &&
  [ \$(grep -c 'hold a leading direction alone' '$T/oa_s') = 1 ] &&
  grep -qE 'pop_fit: 2 scans hold a leading direction: (7[01]) \(0\.[5-9][0-9] of direction [0-9]\) (7[01]) ' '$T/ra_s' &&
  grep -q 'pop_rank auto: rank 3 for every atlas' '$T/oa_s' &&
  ! grep -q 'stand apart from the rest' '$T/oa_s' && ! grep -q 'stand apart' '$T/ra_s'"
