#!/usr/bin/env bash
# slurm-local.sh: a throw-away one-node Slurm (munged + slurmctld + slurmd on 127.0.0.1,
# everything in one temp dir) for the Slurm tests. Not a cluster set-up: nothing outside
# DIR is configured, and only the daemons it started are ever stopped (by PID, never by name).
#
#   slurm-local.sh up                 start; prints DIR as the last stdout line. Client
#                                     commands need `. DIR/env.sh` (exports SLURM_CONF).
#   slurm-local.sh down DIR           cancel this cluster's jobs, stop the PIDs in DIR/pids
#                                     (checked against /proc/PID/comm), remove DIR
#   slurm-local.sh wait DIR JOB [S]   poll until JOB left the queue (timeout S, default 120);
#                                     print "JobId=.. JobState=.. ExitCode=.. Restarts=..";
#                                     rc 0 iff COMPLETED 0:0; 4 if the node drained; 124 timeout
#   slurm-local.sh state DIR JOB      print "STATE EXITCODE REASON RESTARTS" of JOB
#   slurm-local.sh drained DIR        rc 0 iff the node is drained or down (prints why)
#
# Tested with Debian 12's slurm-wlm 22.05.8 as root (no systemd, no cgroups: proctrack/
# linuxproc). Facts behind the settings: docs/slurm.md "Testing on a local Slurm".
# Environment: BGFM_SLURM_PORT (slurmctld port; default the first free of 17817, 18117,
# ...; slurmd +1, srun +10..+200), BGFM_SLURM_KEEP=1 (down keeps DIR for its logs).
# BGFM_SLURM_NODES=FILE: a cluster on the simulated nodes of tests/lib/netns-cluster.sh
# instead of one node on 127.0.0.1. FILE has "IP NETNS NAME" lines (netns-cluster.sh's
# NSC_DIR/map); slurmctld runs in the first node, one slurmd in each node's network
# namespace under the node's host name and in its own mount namespace, where the node's
# private folder DIR/tmp-NAME is mounted on TmpFS=DIR/tmp (PMIx makes per-step folders
# there, which two nodes sharing /tmp would collide on). The controller is reachable from
# the node namespaces only: every client command of this script runs in the first node
# (DIR/ns0), and a test runs its own there too (netns-cluster.sh: nsc_on 0 CMD).
set -euo pipefail

cmd=${1:-}
DIR=${2:-}

log() { echo "[slurm-local] $*" >&2; }
# a Slurm client command: in the first node's network namespace on a simulated cluster
cli() { if [ -f "$DIR/ns0" ]; then nsenter --net="/run/netns/$(cat "$DIR/ns0")" "$@"; else "$@"; fi; }

port_listening() {  # port_listening PORT: is anything listening on it (IPv4 or IPv6)?
  local hex
  hex=$(printf ':%04X ' "$1")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h="$hex" '$4 == "0A" && index($2 " ", h) {f=1} END {exit !f}'
}

start_bg() {  # start_bg NAME LOG CMD...: the daemon runs in the foreground, so $! is its PID
  local name=$1 logf=$2
  shift 2
  nohup "$@" >"$logf" 2>&1 </dev/null &
  echo "$name $!" >>"$DIR/pids"
}

up() {
  [ "$(id -u)" = 0 ] || { log "needs root (slurmd runs jobs as any user)"; exit 1; }
  local b
  for b in munged slurmctld slurmd sinfo sbatch squeue scontrol scancel srun; do
    command -v "$b" >/dev/null || { log "missing $b"; exit 1; }
  done
  DIR=$(mktemp -d /tmp/bgfm-slurm.XXXXXX)
  chmod 755 "$DIR"
  mkdir -p "$DIR"/etc "$DIR"/log "$DIR"/run "$DIR"/spool/ctld "$DIR"/spool/d "$DIR"/munge
  : >"$DIR/pids"
  # On any failure below: stop what was started, keep DIR for the logs.
  trap 'rc=$?; if [ $rc -ne 0 ]; then log "up failed (rc $rc), logs in $DIR/log"; BGFM_SLURM_KEEP=1 "$0" down "$DIR" || true; fi' EXIT

  local port=${BGFM_SLURM_PORT:-}
  if [ -z "$port" ]; then
    for port in 17817 18117 18417 18717 19017 19317; do
      port_listening "$port" || port_listening $((port + 1)) || break
    done
  fi
  port_listening "$port" && { log "port $port is in use; set BGFM_SLURM_PORT"; exit 1; }

  local host hw mem ctldaddr=127.0.0.1 nodes names nodedirs=""
  host=$(hostname -s 2>/dev/null || uname -n | cut -d. -f1)
  if [ -n "${BGFM_SLURM_NODES:-}" ]; then
    [ -s "$BGFM_SLURM_NODES" ] || { log "BGFM_SLURM_NODES: $BGFM_SLURM_NODES is empty or missing"; exit 1; }
    read -r ctldaddr _ host <"$BGFM_SLURM_NODES"
    awk 'NR == 1 {print $2}' "$BGFM_SLURM_NODES" >"$DIR/ns0"
    nodedirs="SlurmdSpoolDir=$DIR/spool/%n
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmdLogFile=$DIR/log/slurmd-%n.log
TmpFS=$DIR/tmp"
    mkdir -p "$DIR/tmp"
  fi
  # The node's hardware as slurmd sees it (a mismatch drains the node); memory at 90 %.
  hw=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ RealMemory=[0-9]*//' -e 's/ UpTime=.*//')
  mem=$(( $(slurmd -C | head -1 | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') * 9 / 10 ))

  chmod 755 "$DIR/munge"  # munged wants o+x on its socket folder
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$DIR/munge/munge.key"
  start_bg munged "$DIR/log/munged.log" munged -F --key-file="$DIR/munge/munge.key" \
    --socket="$DIR/munge/munge.socket.2" --pid-file="$DIR/run/munged.pid" \
    --seed-file="$DIR/munge/munged.seed"
  local i
  for i in $(seq 100); do [ -S "$DIR/munge/munge.socket.2" ] && break; sleep 0.05; done
  [ -S "$DIR/munge/munge.socket.2" ] || { log "munged did not start"; cat "$DIR/log/munged.log" >&2; exit 1; }

  # cred_expire=10 and sched_interval=2: a requeued job may start again after ~11 s
  # instead of ~2-3 min. kill_invalid_depend is NOT set: the scripts must bring their own
  # --kill-on-invalid-dep=yes, and the tests check that they do.
  cat >"$DIR/etc/slurm.conf" <<EOF
ClusterName=bgfmtest
SlurmctldHost=${host}(${ctldaddr})
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${port}
SlurmdPort=$((port + 1))
SrunPortRange=$((port + 10))-$((port + 200))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket.2,cred_expire=10
StateSaveLocation=$DIR/spool/ctld
${nodedirs:-SlurmdSpoolDir=$DIR/spool/d
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmdLogFile=$DIR/log/slurmd.log}
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
EnforcePartLimits=ALL
JobRequeue=0
KillWait=5
MinJobAge=300
InactiveLimit=0
Waittime=0
SlurmdTimeout=300
SlurmctldTimeout=120
EOF
  if [ -n "${BGFM_SLURM_NODES:-}" ]; then
    local ip ns name
    names=""
    while read -r ip ns name; do
      echo "NodeName=${name} NodeAddr=${ip} NodeHostname=${name} ${hw} RealMemory=${mem} State=UNKNOWN"
      names="${names:+$names,}$name"
    done <"$BGFM_SLURM_NODES" >>"$DIR/etc/slurm.conf"
  else
    echo "NodeName=${host} NodeAddr=127.0.0.1 NodeHostname=${host} ${hw} RealMemory=${mem} State=UNKNOWN" >>"$DIR/etc/slurm.conf"
    names=$host
  fi
  echo "PartitionName=debug Nodes=${names} Default=YES MaxTime=INFINITE State=UP" >>"$DIR/etc/slurm.conf"
  printf 'export SLURM_CONF=%s\n' "$DIR/etc/slurm.conf" >"$DIR/env.sh"
  export SLURM_CONF="$DIR/etc/slurm.conf"
  local st="" want=idle
  if [ -n "${BGFM_SLURM_NODES:-}" ]; then
    # nsenter and unshare without --fork, and sh's exec: $! is the daemon itself
    local ip ns name first=1
    while read -r ip ns name; do
      [ $first = 1 ] && start_bg slurmctld "$DIR/log/slurmctld.stdout" nsenter --net="/run/netns/$ns" \
        unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "$name" slurmctld -D -i -f "$SLURM_CONF"
      first=0
      mkdir -p "$DIR/tmp-$name" "$DIR/spool/$name"
      start_bg slurmd "$DIR/log/slurmd-$name.stdout" nsenter --net="/run/netns/$ns" \
        unshare --uts --mount --propagation private /bin/sh -c \
        'hostname "$0" && mount --bind "$1" "$2" && shift 2 && exec "$@"' \
        "$name" "$DIR/tmp-$name" "$DIR/tmp" slurmd -D -f "$SLURM_CONF"
    done <"$BGFM_SLURM_NODES"
    want=$(awk '{printf "%sidle", (NR > 1 ? " " : "")}' "$BGFM_SLURM_NODES")
  else
    start_bg slurmctld "$DIR/log/slurmctld.stdout" slurmctld -D -i -f "$SLURM_CONF"
    start_bg slurmd "$DIR/log/slurmd.stdout" slurmd -D -f "$SLURM_CONF"
  fi
  for i in $(seq 300); do
    st=$(cli sinfo -h -N -o '%t' 2>/dev/null | paste -sd' ' - || true)
    [ "$st" = "$want" ] && break
    sleep 0.1
  done
  [ "$st" = "$want" ] || { log "nodes not idle after 30 s (states '$st')"; tail -n 20 "$DIR"/log/*.log >&2 || true; exit 1; }
  log "nodes $(cli sinfo -h -N -o '%N' | paste -sd, -) idle, slurmctld port $port, DIR=$DIR"
  trap - EXIT
  echo "$DIR"
}

down() {
  [ -n "$DIR" ] && [ -f "$DIR/pids" ] || { log "down: $DIR/pids missing"; exit 1; }
  export SLURM_CONF="$DIR/etc/slurm.conf"
  local name pid ctld=0
  while read -r name pid; do
    if [ "$name" = slurmctld ] && kill -0 "$pid" 2>/dev/null; then ctld=1; fi
  done <"$DIR/pids"
  if [ $ctld = 1 ] && [ -f "$SLURM_CONF" ]; then
    # cancel this cluster's jobs first, so their slurmstepd processes end with slurmd
    local jobs i
    jobs=$(timeout 10 cli squeue -h -o '%A' 2>/dev/null | tr '\n' ' ' || true)
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086
      timeout 10 cli scancel $jobs 2>/dev/null || true
      for i in $(seq 100); do
        [ -z "$(timeout 5 cli squeue -h -t R,CG,S -o '%A' 2>/dev/null || true)" ] && break
        sleep 0.2
      done
    fi
  fi
  # stop in reverse start order, only our PIDs (a reused PID has another comm)
  tac "$DIR/pids" | while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored SIGTERM for 10 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    fi
  done
  if [ -z "${BGFM_SLURM_KEEP:-}" ]; then
    case "$DIR" in /tmp/bgfm-slurm.*) rm -rf "$DIR" ;; *) log "kept $DIR (not ours by name)" ;; esac
  else
    log "kept $DIR"
  fi
}

record() {  # record JOB: one line of key fields from scontrol
  cli scontrol show job "$1" -o 2>/dev/null | head -1 |
    grep -oE '^JobId=[0-9]+|JobState=[A-Z_]+|Reason=[^ ]+|ExitCode=[0-9]+:[0-9]+|Restarts=[0-9]+' |
    paste -sd' ' -
}

waitjob() {
  local j=${1:?job id} to=${2:-120} t0 rec
  t0=$(date +%s)
  while [ -n "$(cli squeue -h -j "$j" -o %A 2>/dev/null)" ]; do
    if [ $(( $(date +%s) - t0 )) -ge "$to" ]; then log "timeout waiting for job $j"; return 124; fi
    sleep 0.2
  done
  rec=$(record "$j")
  [ -n "$rec" ] || { log "job $j unknown"; return 3; }
  echo "$rec"
  if drained >/dev/null; then log "node drained: $(cli sinfo -h -N -o '%E')"; return 4; fi
  case "$rec" in *"JobState=COMPLETED"*"ExitCode=0:0"*) return 0 ;; *) return 1 ;; esac
}

state() {
  local rec
  rec=$(cli scontrol show job "$1" -o 2>/dev/null | head -1)
  [ -n "$rec" ] || { echo "UNKNOWN - - -"; return 0; }
  local s e r n
  s=$(echo "$rec" | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2)
  e=$(echo "$rec" | grep -oE 'ExitCode=[0-9]+:[0-9]+' | cut -d= -f2)
  r=$(echo "$rec" | grep -oE 'Reason=[^ ]+' | cut -d= -f2)
  n=$(echo "$rec" | grep -oE 'Restarts=[0-9]+' | cut -d= -f2)
  echo "$s $e $r $n"
}

drained() {
  local st
  st=$(cli sinfo -h -N -o '%t' | paste -sd' ' -)
  case "$st" in *drain*|*drng*|*down*|*fail*) echo "$st: $(cli sinfo -h -N -o '%E' | paste -sd' ' -)"; return 0 ;; esac
  return 1
}

case "$cmd" in
  up) up ;;
  down) down ;;
  wait) export SLURM_CONF="$DIR/etc/slurm.conf"; shift 2; waitjob "$@" ;;
  state) export SLURM_CONF="$DIR/etc/slurm.conf"; state "${3:?job id}" ;;
  drained) export SLURM_CONF="$DIR/etc/slurm.conf"; drained ;;
  *) echo "usage: $0 up | down DIR | wait DIR JOB [TIMEOUT] | state DIR JOB | drained DIR" >&2; exit 2 ;;
esac
