#!/usr/bin/env bash
# make bench (soak): the eBPF capture and splice under connection churn for SOAK_SECS (600): an
# enrolled pod's app -> ztunnel stand-in -> remote server, alternating 5 s of connection churn
# (connect, 1 B echo, close, as fast as possible) with 2,000 64 B round trips on one long-lived
# connection, slice after slice. A stall shows as a slice with no connections or a round trip
# without an answer (mtnet exits non-zero); the largest round trip seen is printed as the bound.
# Root only; everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/build; SECS=${SOAK_SECS:-600}; CC=${CLIENT_CPU:-0}; SC=${SERVER_CPU:-1}
ID=$$; CG=/sys/fs/cgroup/unified/meshtune-soak-$ID; S=mts$ID
pids=()
. bench/lib.sh
cleanup() {
  bench_teardown $CG $S-p $S-up
  rm -f /tmp/mt-soak-$ID.*
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "soak needs root"; exit 1; }
mkdir -p $CG/pod $CG/zt
for n in p up; do ip netns add $S-$n; ip -n $S-$n link set lo up; ip netns exec $S-$n sysctl -qw net.ipv4.tcp_tw_reuse=1; done
ip link add eth0 netns $S-p type veth peer name u0 netns $S-up
ip -n $S-p addr add 10.195.1.2/24 dev eth0; ip -n $S-p link set eth0 up; ip -n $S-p route add default via 10.195.1.1
ip -n $S-up addr add 10.195.1.1/24 dev u0; ip -n $S-up link set u0 up; ip -n $S-up addr add 10.195.99.1/32 dev lo
ip netns exec $S-up taskset -c $SC $B/mtnet serve 10.195.99.1:8080 > /dev/null 2>&1 & pids+=($!)
LOG=/tmp/mt-soak-$ID.zt
sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' $CG/zt taskset -c $SC $B/mtztunnel /run/netns/$S-p > $LOG 2>&1 & pids+=($!); ZT=$!
for _ in $(seq 50); do grep -q ready $LOG && break; sleep 0.1; done
$B/meshtune-bpf load --cgroup $CG > /dev/null
printf '%s\n' "ambient 1 /run/netns/$S-p $ZT ips=10.195.1.2" "set $CG/pod id=1 flags=8 ips=10.195.1.2" | $B/meshtune-bpf pods | grep -q '"ok":false' && { echo "soak: enrolment failed"; exit 1; }
client() { inpod $CG/pod $S-p $CC "$@"; }
# ztunnel's log is not needed for the figures and would grow by a line per connection.
: > $LOG
end=$(( $(date +%s) + SECS )); slices=0; conns=0; minrate=999999999; maxus=0; worstp99=0
while [ $(date +%s) -lt $end ]; do
  r=$(client $B/mtnet connrate 10.195.99.1:8080 5) || { echo "soak: STALL: connection churn failed in slice $slices"; exit 1; }
  pp=$(client $B/mtnet pingpong 10.195.99.1:8080 64 2000) || { echo "soak: STALL: round trips failed in slice $slices"; exit 1; }
  read -r n rate <<< "$(echo "$r" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["connections"], int(d["perSecond"]))')"
  read -r mx p99 <<< "$(echo "$pp" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["maxus"], d["p99us"])')"
  [ "$n" -gt 0 ] || { echo "soak: STALL: no connection in slice $slices"; exit 1; }
  slices=$((slices + 1)); conns=$((conns + n))
  [ "$rate" -lt "$minrate" ] && minrate=$rate
  maxus=$(python3 -c "print(max($maxus, $mx))"); worstp99=$(python3 -c "print(max($worstp99, $p99))")
  : > $LOG
done
spliced=$($B/meshtune-bpf status | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["ambient_redirected"])')
[ "$spliced" -ge "$conns" ] || { echo "soak: only $spliced of $conns connections were captured: the work did not happen"; exit 1; }
echo "soak: ${SECS} s, $slices slices, $conns connections captured ($spliced redirects), no stall; slowest slice $minrate conn/s; worst p99 ${worstp99} µs; largest round trip ${maxus} µs"
