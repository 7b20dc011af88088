# slurm-tap.sh: the common start of the Slurm tests. Source it after tap.sh: it defines
# ok_if and LIB, installs Slurm when it is missing (root + apt) or prints a TAP SKIP and
# exits, and arranges for the cluster in $D (set by the test after `$LIB up`) to be torn
# down at exit. Sets t0 (start time, seconds).
ok_if() { if [ "$2" -eq 0 ]; then ok "$1"; else notok "$1"; fi; }  # ok_if NAME STATUS
LIB=$ROOT/tests/lib/slurm-local.sh

missing() { local b; for b in slurmctld slurmd sbatch srun munged; do command -v "$b" >/dev/null || { echo "$b"; return 0; }; done; return 1; }
if m=$(missing); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      slurmctld slurmd slurm-client munge libpmix-dev >"$T/apt.log" 2>&1 || true
  fi
  if m=$(missing); then
    echo "ok - # SKIP Slurm is not installed ($m missing) and apt-get could not install it"
    exit 0
  fi
fi

D=
cleanup() { if [ -n "$D" ]; then "$LIB" down "$D" >/dev/null 2>&1 || true; fi; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
t0=$(date +%s)
