#!/usr/bin/env bash
# deps.sh: the package split of `make deps` (running) and `make deps-test` (testing):
# `make demo` and `make install` ask only for the running list and build only the program
# (no cmocka), the running list holds no test tool, `make test`/`make check` ask for both.
# Read from `make -n` and scripts/deps.sh, so nothing is installed by this test.
source "$(dirname "$0")/../lib/tap.sh"
cd "$ROOT"
check "make demo: scripts/deps.sh run, never test" bash -c "dry() { make -n \"\$@\" BUILD=build-depstest 2>/dev/null; }; dry demo | grep -q 'deps.sh run' && ! dry demo | grep -q 'deps.sh test'"
check "make demo and make install: no unit test and no cmocka" bash -c "! make -n demo install BUILD=build-depstest 2>/dev/null | grep -q -e 'lcmocka' -e 'tests/test_'"
check "make test and make check: both lists" bash -c "for t in test check; do make -n \$t BUILD=build-depstest 2>/dev/null | grep -q 'deps.sh run' && make -n \$t BUILD=build-depstest 2>/dev/null | grep -q 'deps.sh test' || exit 1; done"
run_list=$(sed -n '/^RUN=(/,/)/p' scripts/deps.sh)
check "the running list holds no test tool" bash -c "! echo '$run_list' | grep -q -e cmocka -e python3 -e slurm -e munge -e clang -e valgrind -e pmix"
check "the running list holds what the program links and the demo reads" bash -c "for p in libopenmpi-dev openmpi-bin libhdf5-openmpi-dev libopenblas-dev liblapacke-dev libyaml-dev libnifti2-dev libisal-dev zlib1g-dev mricron-data; do echo '$run_list' | grep -qw \$p || exit 1; done"
check "CI installs both" grep -q "make deps deps-test" .ci/run
rm -rf build-depstest
