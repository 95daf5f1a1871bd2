#!/usr/bin/env bash
# make bench (proxy priority): requests through a proxy whose pod's app saturates the CPU the
# proxy runs on, with the proxy's CPU weight as the kubelet sets it (cpu.shares 102 for a 100m
# request, the app 1024 for 1 CPU) and with meshtune's priority (the proxy 8 × the app's).
# The proxy is the ztunnel stand-in's outbound relay (REDIRECT to 15001, SO_ORIGINAL_DST,
# relay), pinned with the app's spinner to CPU 1 in sibling cgroups (cgroup v1 cpu here, as on
# this hybrid host); client and server on CPU 0. Interleaved rounds; p50/p99 of 64 B round trips,
# and the app's CPU share during them (what priority costs the app). Root only; all removed.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/build; ROUNDS=${ROUNDS:-3}; ITERS=${ITERS:-3000}
ID=$$; V1=/sys/fs/cgroup/cpu/meshtune-prio-bench-$ID; S=mtq$ID
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null
  ip netns del $S-c 2>/dev/null; ip netns del $S-up 2>/dev/null
  for _ in $(seq 50); do [ -d $V1 ] || break; rmdir $V1/app $V1/proxy $V1 2>/dev/null || sleep 0.1; done
  rm -f /tmp/mt-prio-$ID.*
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "proxy-priority bench needs root"; exit 1; }
[ -f /sys/fs/cgroup/cpu/cpu.shares ] || { echo "proxy-priority bench: no cgroup v1 cpu controller (unified hosts: cpu.weight, see README)"; exit 0; }

mkdir -p $V1/app $V1/proxy
for n in c up; do ip netns add $S-$n; ip -n $S-$n link set lo up; done
ip link add eth0 netns $S-c type veth peer name u0 netns $S-up
ip -n $S-c addr add 10.196.1.2/24 dev eth0; ip -n $S-c link set eth0 up; ip -n $S-c route add default via 10.196.1.1
ip -n $S-up addr add 10.196.1.1/24 dev u0; ip -n $S-up link set u0 up; ip -n $S-up addr add 10.196.99.1/32 dev lo
ip netns exec $S-up taskset -c 0 $B/mtnet serve 10.196.99.1:8080 > /dev/null 2>&1 & pids+=($!)
ip netns exec $S-c iptables -t nat -A OUTPUT -p tcp -d 10.196.99.1 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
LOG=/tmp/mt-prio-$ID.zt
sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' $V1/proxy taskset -c 1 $B/mtztunnel /run/netns/$S-c > $LOG 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q ready $LOG && break; sleep 0.1; done
sh -c 'echo $$ > "$0/cgroup.procs" && exec taskset -c 1 sh -c "while :; do :; done"' $V1/app & pids+=($!); SPIN=$!
cpu() { awk '{print $14 + $15}' /proc/$1/stat; }

OUT=/tmp/mt-prio-$ID.out
for r in $(seq $ROUNDS); do
  for v in kubelet priority; do
    echo 1024 > $V1/app/cpu.shares
    [ $v = kubelet ] && echo 102 > $V1/proxy/cpu.shares || echo 8192 > $V1/proxy/cpu.shares
    a0=$(cpu $SPIN); t0=$(date +%s%N)
    pp=$(ip netns exec $S-c taskset -c 0 $B/mtnet pingpong 10.196.99.1:8080 64 $ITERS)
    a1=$(cpu $SPIN); t1=$(date +%s%N)
    echo "$v $(echo "$pp" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["p50us"], d["p99us"], d["iters"])') $(( (a1 - a0) * 10 )) $(( (t1 - t0) / 1000000 ))" >> $OUT
  done
  echo "round $r/$ROUNDS done" >&2
done
seen=$(grep -c '^out 0 10.196.99.1:8080' $LOG || true)
python3 - "$OUT" "$ROUNDS" "$seen" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    v, p50, p99, iters, app_ms, wall_ms = line.split()
    rows.setdefault(v, []).append((float(p50), float(p99), int(iters), int(app_ms), int(wall_ms)))
rounds, seen = int(sys.argv[2]), int(sys.argv[3])
if seen < 2 * rounds or any(r[2] <= 0 for v in rows.values() for r in v):
    sys.exit(f"proxy-priority bench: the proxy relayed {seen} connections: the work did not happen")
med = lambda v, i: st.median(r[i] for r in rows[v])
rng = lambda v, i: (min(r[i] for r in rows[v]), max(r[i] for r in rows[v]))
print(f"proxy priority bench: 64 B round trips through a proxy sharing CPU 1 with a spinning app, {rounds} interleaved rounds; median [min-max]")
for v in ("kubelet", "priority"):
    lo, hi = rng(v, 0)
    share = st.median(r[3] / max(1, r[4]) for r in rows[v])
    print(f"  {v:9} p50 {med(v,0):8.1f} µs [{lo:.1f}-{hi:.1f}]  p99 {med(v,1):8.1f} µs  app CPU share {share*100:5.1f} %")
print(f"  ratios priority / kubelet: p50 {med('priority',0)/med('kubelet',0):.2f}x, p99 {med('priority',1)/med('kubelet',1):.2f}x")
print(f"  the proxy relayed {seen} connections; the app keeps the rest of CPU 1 (weights are work-conserving)")
PY
