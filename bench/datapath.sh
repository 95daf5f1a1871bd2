#!/usr/bin/env bash
# make bench (datapath): C ping-pong/stream/connect-rate so kernel differences stay visible.
#  app <-> local proxy: (a) loopback TCP  (b) sockmap splice  (c) Unix socket (physical anchor)
#  app -> proxy -> upstream (upstream in a netns over veth):
#    (d) iptables REDIRECT (app+proxy in a netns)  (e) eBPF redirect  (f) eBPF redirect + sockmap
# Ratios against (a) and (d) from this same run. Root only; everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build; ITERS=${ITERS:-20000}; MB=${MB:-1000}; SECS=${SECS:-3}
ID=$$; CG=/sys/fs/cgroup/unified/meshtune-bench-$ID; UP=mtu$ID; IPT=mti$ID; EBF=mte$ID
pids=()
cleanup() {
  set +e
  $B/meshtune-bpf unload >/dev/null 2>&1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -f $CG/cgroup.procs ] && xargs -r kill -9 < $CG/cgroup.procs 2>/dev/null; wait 2>/dev/null
  for n in $UP $IPT $EBF-e $EBF-f; do ip netns del $n 2>/dev/null; done; ip link del mtbh$ID 2>/dev/null
  for _ in $(seq 50); do [ -d $CG ] && ! rmdir $CG 2>/dev/null && sleep 0.1; done
  rm -f /tmp/mt-bench-$ID.sock
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "datapath bench needs root"; exit 1; }

INCG=(sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG") # exec: the recorded pid is the process itself
bg() { "$@" > /dev/null 2>&1 & pids+=($!); sleep 0.3; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
measure() {
  # label [runner... ending in mtnet]; prints "label p50 p99 MBps"
  local label=$1; shift
  [ $# -gt 0 ] || set -- $B/mtnet
  local pp st; pp=$("$@" pingpong "$ADDR" 64 "$ITERS"); st=$("$@" stream "$ADDR" 4096 "$MB")
  echo "$label $(echo "$pp" | field p50us) $(echo "$pp" | field p99us) $(echo "$st" | field MBps)"
}

mkdir -p $CG
# upstream netns over a veth pair (the "remote pod")
ip netns add $UP; ip link add mtbh$ID type veth peer name mtbn$ID; ip link set mtbn$ID netns $UP
ip addr add 10.198.1.1/24 dev mtbh$ID; ip link set mtbh$ID up
ip -n $UP addr add 10.198.1.2/24 dev mtbn$ID; ip -n $UP link set mtbn$ID up; ip -n $UP link set lo up
bg ip netns exec $UP $B/mtnet serve 10.198.1.2:8080

R=()
# (a) loopback TCP, no BPF
bg $B/mtnet serve 127.0.0.1:19501; ADDR=127.0.0.1:19501; R+=("$(measure a.loopback-tcp)")
# (c) Unix domain socket
bg $B/mtnet serve unix:/tmp/mt-bench-$ID.sock; ADDR=unix:/tmp/mt-bench-$ID.sock; R+=("$(measure c.unix-socket)")
# (b) sockmap splice: both ends in the cgroup
$B/meshtune-bpf load --cgroup $CG --proxy-port 15501 >/dev/null
bg "${INCG[@]}" $B/mtnet serve 127.0.0.1:19502; ADDR=127.0.0.1:19502; R+=("$(measure b.sockmap-splice "${INCG[@]}" $B/mtnet)")
$B/meshtune-bpf unload >/dev/null

# (d), (e), (f) each run app + proxy in a fresh netns (same TIME_WAIT and port state), linked
# by its own veth to the upstream netns. (d) redirects with iptables; (e)/(f) with the cgroup programs.
side() { # name subnet: a netns with a veth to $UP, upstream server on .2
  ip netns add $1; ip link add ${1}a type veth peer name ${1}b; ip link set ${1}a netns $1; ip link set ${1}b netns $UP
  ip -n $1 addr add 10.198.$2.1/24 dev ${1}a; ip -n $1 link set ${1}a up; ip -n $1 link set lo up
  ip -n $UP addr add 10.198.$2.2/24 dev ${1}b; ip -n $UP link set ${1}b up
  bg ip netns exec $UP $B/mtnet serve 10.198.$2.2:8080
}
side $IPT 2
ip netns exec $IPT iptables -t nat -A OUTPUT -p tcp -d 10.198.2.2 --dport 8080 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001
bg ip netns exec $IPT $B/mtproxy 15001 1337
ADDR=10.198.2.2:8080
R+=("$(measure d.iptables-redirect ip netns exec $IPT $B/mtnet)")
CR_D=$(ip netns exec $IPT $B/mtnet connrate $ADDR $SECS | field perSecond)

for mode in e f; do
  ns=$EBF-$mode; net=$([ $mode = e ] && echo 3 || echo 4); side $ns $net; ADDR=10.198.$net.2:8080
  if [ $mode = e ]; then $B/meshtune-bpf load --cgroup $CG --proxy-port 15001 --no-splice >/dev/null; label=e.ebpf-redirect
  else $B/meshtune-bpf load --cgroup $CG --proxy-port 15001 >/dev/null; label=f.ebpf-redirect+sockmap; fi
  bg "${INCG[@]}" ip netns exec $ns $B/mtproxy 15001 1337  # cgroup first: netns exec remounts /sys
  R+=("$(measure $label "${INCG[@]}" ip netns exec $ns $B/mtnet)")
  cr=$("${INCG[@]}" ip netns exec $ns $B/mtnet connrate $ADDR $SECS | field perSecond)
  [ $mode = e ] && CR_E=$cr || CR_F=$cr
  kill -9 "${pids[-1]}" || true; $B/meshtune-bpf unload >/dev/null
done

python3 - "$CR_D" "$CR_E" "$CR_F" "${R[@]}" <<'PY'
import sys
crd, cre, crf = map(float, sys.argv[1:4])
rows = {r.split()[0]: list(map(float, r.split()[1:])) for r in sys.argv[4:]}
a, d = rows["a.loopback-tcp"], rows["d.iptables-redirect"]
print("datapath bench (64 B ping-pong RTT, 4 KB stream echo throughput)")
print(f"{'path':26} {'p50 µs':>8} {'p99 µs':>8} {'MB/s':>8}   {'p50/a':>6} {'p50/d':>6} {'MB/s /a':>8}")
for k, (p50, p99, mbps) in rows.items():
    print(f"{k:26} {p50:8.1f} {p99:8.1f} {mbps:8.0f}   {p50/a[0]:6.2f} {p50/d[0]:6.2f} {mbps/a[2]:8.2f}")
b, c = rows["b.sockmap-splice"], rows["c.unix-socket"]
print(f"connection setup (connect + 1 B echo + close) through the proxy: iptables {crd:.0f}/s, eBPF {cre:.0f}/s, eBPF+sockmap {crf:.0f}/s")
print(f"  setup time eBPF/iptables: {crd/cre:.2f}x (target <= 0.8)   eBPF+sockmap/iptables: {crd/crf:.2f}x")
print(f"targets: sockmap RTT <= 0.6x loopback: {b[0]/a[0]:.2f}x; <= 1.3x UDS: {b[0]/c[0]:.2f}x; 4 KB throughput >= 1.5x loopback: {b[2]/a[2]:.2f}x")
PY
