# netns-cluster.sh: a simulated cluster on this machine for tests and benchmarks (source
# it; bash). K "nodes" are network namespaces, each with its own address and host name,
# joined by veth pairs to a bridge that lives in a further namespace (a bridge cannot
# move between namespaces, and the root namespace gets no address and no link). Open
# MPI is started inside node 0 and reaches the other nodes through a launcher agent that
# enters their namespace instead of ssh. Not a container runtime: the nodes share the
# CPUs, the memory and the file system (the shared file system of the cluster).
#
#   nsc_up K         create the namespaces, links and addresses (root only; returns 1
#                    with the reason in NSC_WHY when this machine does not permit it).
#                    Sets NSC_DIR (agent + hostfiles), NSC_NET (10.213.0.0/24), NSC_IP[i].
#   nsc_down         delete exactly what nsc_up created (call it from the EXIT trap)
#   nsc_mpirun NODES NP [mpirun options] -- CMD...
#                    mpirun in node 0 over the first NODES nodes (their hostfile), NP ranks
#                    round-robin by node, TCP only (btl tcp,self: no shared memory even
#                    between ranks of one node), both interface filters on NSC_NET, not
#                    bound to cores (the nodes share the same 2 cores) and yielding when
#                    idle. The environment reaching remote ranks is what a login shell
#                    would give (PATH, HOME) plus what -x names, as with ssh. Under
#                    `timeout ${NSC_TIMEOUT:-300}` (exit 124 = a hang).
#   nsc_on N CMD...  CMD in node N's network namespace under its host name, with the
#                    caller's environment (a shell on that node): Slurm clients of a
#                    cluster made with BGFM_SLURM_NODES=$NSC_DIR/map (tests/lib/slurm-local.sh)
#   nsc_mpirun_local NP [mpirun options] -- CMD...
#                    the same mpirun in node 0 alone (every rank on one node, TCP only):
#                    the reference with the same transport
#
# Each node's rank placement is also what a real cluster would give: `hostname` and
# MPI_Get_processor_name return node0, node1, ...
NSC_NET=10.213.0.0/24
NSC_DIR=
NSC_CREATED=()
NSC_IP=()

nsc_up() {
  local k=$1 i pfx="bgfm$$"
  NSC_WHY=
  if [ "$(id -u)" -ne 0 ]; then NSC_WHY="not root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN"; return 1; fi
  command -v ip >/dev/null || { NSC_WHY="no ip command (Debian package iproute2)"; return 1; }
  command -v unshare >/dev/null || { NSC_WHY="no unshare command (util-linux)"; return 1; }
  NSC_DIR=$(mktemp -d /tmp/bgfm-nsc.XXXXXX)
  local err="$NSC_DIR/err"
  ip netns add "${pfx}br" 2>"$err" || { NSC_WHY="ip netns add: $(cat "$err")"; return 1; }
  NSC_CREATED+=("${pfx}br")
  ip -n "${pfx}br" link add br0 type bridge 2>"$err" && ip -n "${pfx}br" link set br0 up 2>>"$err" ||
    { NSC_WHY="bridge: $(cat "$err")"; return 1; }
  : >"$NSC_DIR/map"
  for ((i = 0; i < k; i++)); do
    local ns="${pfx}n$i" ip="10.213.0.$((i + 1))"
    ip netns add "$ns" 2>"$err" || { NSC_WHY="ip netns add: $(cat "$err")"; return 1; }
    NSC_CREATED+=("$ns")
    { ip -n "${pfx}br" link add "v$i" type veth peer name eth0 netns "$ns" &&
      ip -n "${pfx}br" link set "v$i" master br0 up &&
      ip -n "$ns" addr add "$ip/24" dev eth0 &&
      ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up; } 2>"$err" ||
      { NSC_WHY="veth/address for node $i: $(cat "$err")"; return 1; }
    NSC_IP[$i]=$ip
    echo "$ip $ns node$i" >>"$NSC_DIR/map"
    : >"$NSC_DIR/hosts$((i + 1))"
  done
  for ((i = 0; i < k; i++)); do  # hostfile of the first n nodes: "IP slots=2" lines
    local n; for ((n = i + 1; n <= k; n++)); do echo "${NSC_IP[$i]} slots=2" >>"$NSC_DIR/hosts$n"; done
  done
  # the launcher agent: called by mpirun as `agent [ssh options] HOST COMMAND...`; runs
  # the command in HOST's namespace with its own host name (a UTS namespace), through a
  # shell as sshd would, with a login-like environment
  # the sanitizers' settings (make check) reach the ranks as they would through a
  # cluster's shell profile: without them LeakSanitizer reports Open MPI's own leaks
  local san="" v
  for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
    [ -n "${!v:-}" ] && san="$san $v=${!v}"
  done
  cat >"$NSC_DIR/agent" <<EOF
#!/bin/sh
while [ \$# -gt 0 ]; do case "\$1" in -*) shift ;; *) break ;; esac; done
host=\$1; shift
line=\$(grep "^\$host " "$NSC_DIR/map") || { echo "nsc agent: unknown host \$host" >&2; exit 255; }
set -- "\$(echo "\$line" | cut -d' ' -f2)" "\$(echo "\$line" | cut -d' ' -f3)" "\$*"
exec env -i PATH="$PATH" HOME="\$HOME" $san ip netns exec "\$1" unshare --uts /bin/sh -c 'hostname "\$0" && exec /bin/sh -c "\$1"' "\$2" "\$3"
EOF
  chmod +x "$NSC_DIR/agent"
  # the transport works between the nodes (a first mpirun also checks the agent)
  if ! ip netns exec "${pfx}n0" unshare --uts /bin/true 2>"$err"; then
    NSC_WHY="unshare --uts: $(cat "$err")"; return 1
  fi
  return 0
}

nsc_down() {
  local ns
  for ns in "${NSC_CREATED[@]}"; do
    # processes still inside (a killed job's daemons) are ended first: by their PIDs in
    # that namespace only
    local p; for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  NSC_CREATED=()
  [ -n "$NSC_DIR" ] && rm -rf "$NSC_DIR"
  NSC_DIR=
}

# _nsc_run NODES NP [opts] -- CMD...: the common mpirun line, in node 0
_nsc_run() {
  local nodes=$1 np=$2; shift 2
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  timeout "${NSC_TIMEOUT:-300}" ip netns exec "bgfm$$n0" unshare --uts /bin/sh -c 'hostname node0 && exec "$@"' sh \
    mpirun --hostfile "$NSC_DIR/hosts$nodes" -np "$np" --map-by node --bind-to none \
    --mca plm_rsh_agent "$NSC_DIR/agent" --mca btl tcp,self --mca btl_tcp_if_include "$NSC_NET" \
    --mca oob_tcp_if_include "$NSC_NET" --mca mpi_yield_when_idle 1 \
    -x OPENBLAS_NUM_THREADS -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    "${opts[@]}" "$@"
}
nsc_mpirun() { _nsc_run "$@"; }
nsc_mpirun_local() { local np=$1; shift; _nsc_run 1 "$np" --oversubscribe "$@"; }
nsc_on() {
  local n=$1; shift
  nsenter --net="/run/netns/bgfm$$n$n" unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "node$n" "$@"
}
