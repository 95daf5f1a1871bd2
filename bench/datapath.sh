#!/usr/bin/env bash
# make bench (datapath): C ping-pong / stream / connect-rate, so kernel differences stay visible.
# Variants, all set up once and measured round by round (interleaved), client pinned to CPU 0,
# proxies and servers to CPU 1:
#   a  app -> local server, loopback TCP (baseline)          c  same over a Unix socket (anchor)
#   b  app -> captured destination -> its pod's proxy, eBPF capture + sockmap splice (app<->proxy)
#   e  app -> captured destination -> local echo "proxy", iptables REDIRECT (b's baseline)
#   d  app -> proxy -> upstream pod on another "node" (netns over veth), iptables REDIRECT
#   f  same path, eBPF capture + splice (meshed pod)
#   g  same-node pod -> pod through both proxies, iptables on both sides (OUTPUT REDIRECT to
#      15001 in the client pod, PREROUTING REDIRECT to 15006 in the server pod, as istio-iptables)
#   h  same path, eBPF: capture, proxy -> peer inbound 15006, 127.0.0.6 delivery, all spliced
#   i  same pods, no proxy at all (a port neither side captures): the floor that skipping both
#      proxy hops for pass-through flows could reach (issue 25 item 2; not shipped, see README)
#   j  h's pods with the client proxy hop skipped: the client app connects as the proxy uid, so
#      eBPF sends it straight to the peer's inbound proxy (15006), as it does for h's client proxy.
#      In a cluster the server pod's own inbound capture (istio-init / istio-cni iptables) keeps
#      its proxy in the path whatever the client does: this is the most skipping can give there
# a, b, c, e use a one-connection-at-a-time echo (mtnet serve1), so their connect rate measures
# the datapath rather than thread creation; the proxies of d, f, g, h start a thread per
# connection, as mtproxy does, which caps those rates alike.
# Ratios against a (loopback) and d/g (iptables) from this same run. Root only; everything is
# removed on exit. ROUNDS, ITERS, MB, SECS tune the run.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/build; CC=${CLIENT_CPU:-0}; SC=${SERVER_CPU:-1}; ROUNDS=${ROUNDS:-3}; ITERS=${ITERS:-20000}; MB=${MB:-500}; SECS=${SECS:-2}
ID=$$; CG=/sys/fs/cgroup/unified/meshtune-bench-$ID; S=mtb$ID
NS=($S-up $S-ipt $S-ebf $S-node $S-ga $S-gb $S-ha $S-hb $S-pb $S-pe)
pids=()
. bench/lib.sh
cleanup() {
  bench_teardown $CG "${NS[@]}"
  rm -f /tmp/mt-bench-$ID.sock
}
trap cleanup EXIT
# Where the time goes: per-program run time (bpf_prog_info run_time_ns / run_cnt) while the
# variants run; the setting is restored on exit.
OLD_STATS=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -q kernel.bpf_stats_enabled=$OLD_STATS; cleanup' EXIT
sysctl -q kernel.bpf_stats_enabled=1
[ "$(id -u)" = 0 ] || { echo "datapath bench needs root"; exit 1; }
command -v taskset >/dev/null || { echo "datapath bench needs taskset (util-linux)"; exit 1; }

innet() { local ns=$1 cpu=$2; shift 2; ip netns exec "$ns" taskset -c "$cpu" "$@"; }
veth() { # netnsA ifA addrA netnsB ifB addrB
  ip link add $2 netns $1 type veth peer name $5 netns $4
  ip -n $1 addr add $3 dev $2; ip -n $1 link set $2 up; ip -n $4 addr add $6 dev $5; ip -n $4 link set $5 up
}

mkdir -p $CG
for n in "${NS[@]}"; do ip netns add $n; ip -n $n link set lo up; ip netns exec $n sysctl -qw net.ipv4.tcp_tw_reuse=1; done # same churn tuning for every variant
# Upstream "remote pod" for the full path: one echo server per client netns.
veth $S-ipt eth0 10.198.2.1/24 $S-up u2 10.198.2.2/24
veth $S-ebf eth0 10.198.3.1/24 $S-up u3 10.198.3.2/24
bg innet $S-up $SC $B/mtnet serve 10.198.2.2:8080
bg innet $S-up $SC $B/mtnet serve 10.198.3.2:8080
# Same-node pods on a bridge in a node netns.
ip -n $S-node link add br0 type bridge; ip -n $S-node link set br0 up
k=10; for p in ga gb ha hb; do k=$((k+1))
  ip link add v$p$ID netns $S-node type veth peer name eth0 netns $S-$p
  ip -n $S-node link set v$p$ID master br0 up
  ip -n $S-$p addr add 10.198.5.$k/24 dev eth0; ip -n $S-$p link set eth0 up
done
GB=10.198.5.12; HB=10.198.5.14

# iptables variants (d, g): those pods are not in the attach cgroup, so eBPF never sees them.
ip netns exec $S-ipt iptables -t nat -A OUTPUT -p tcp -d 10.198.2.2 --dport 8080 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001
bg innet $S-ipt $SC $B/mtproxy 15001 1337
ip -n $S-pe link add d0 type veth peer name d1; ip -n $S-pe link set d1 up; ip -n $S-pe addr add 10.198.9.1/24 dev d0; ip -n $S-pe link set d0 up # a route out, as eth0 gives a pod
ip netns exec $S-pe iptables -t nat -A OUTPUT -p tcp -d 10.198.9.9 --dport 8080 -j REDIRECT --to-ports 15001
bg innet $S-pe $SC $B/mtnet serve1 127.0.0.1:15001   # e: the "proxy" echoes, one connection at a time
ip netns exec $S-ga iptables -t nat -A OUTPUT -p tcp -d $GB --dport 8080 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001
ip netns exec $S-gb iptables -t nat -A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 15006
bg innet $S-ga $SC $B/mtproxy 15001 1337 15006
bg innet $S-gb $SC $B/mtproxy 15001 1337 15006
bg innet $S-gb $SC $B/mtnet serve $GB:8080
bg innet $S-gb $SC $B/mtnet serve $GB:8081   # i: not captured (the rules match 8080 only)

# eBPF variants (b, f, h): one load, pods registered as the agent registers them (flags 7:
# capture all outbound, all inbound, REDIRECT mode).
for p in pb ebf ha hb; do mkdir -p $CG/$p; done
$B/meshtune-bpf load --cgroup $CG --skb-verdict ${SKB_VERDICT:-auto} >/dev/null
printf 'set %s id=1 flags=7\nset %s id=2 flags=7\nset %s id=3 flags=7 ips=10.198.5.13\nset %s id=4 flags=7 ips=%s\n' \
  $CG/pb $CG/ebf $CG/ha $CG/hb $HB | $B/meshtune-bpf pods | grep -q '"ok":false' && { echo "pods set failed"; exit 1; }
bg inpod $CG/pb $S-pb $SC $B/mtnet serve1 127.0.0.1:15001   # b: the "proxy" echoes, one connection at a time
bg inpod $CG/ebf $S-ebf $SC $B/mtproxy 15001 1337
bg inpod $CG/ha $S-ha $SC $B/mtproxy 15001 1337 15006
bg inpod $CG/hb $S-hb $SC $B/mtproxy 15001 1337 15006
bg inpod $CG/hb $S-hb $SC $B/mtnet serve $HB:8080

bg taskset -c $SC $B/mtnet serve1 127.0.0.1:19501
bg taskset -c $SC $B/mtnet serve1 unix:/tmp/mt-bench-$ID.sock

# label | addr | client runner (pinned to CPU 0) | measure connrate? | datapath counter that must
# grow while it runs (the eBPF variants took the path they name), or -
variants=(
  "a.loopback-tcp|127.0.0.1:19501|taskset -c $CC|0|-"
  "c.unix-socket|unix:/tmp/mt-bench-$ID.sock|taskset -c $CC|0|-"
  "e.iptables-app-proxy|10.198.9.9:8080|innet $S-pe $CC|1|-"
  "b.ebpf-app-proxy-splice|10.198.9.9:8080|inpod $CG/pb $S-pb $CC|1|sockmap_redirected"
  "d.iptables-full-path|10.198.2.2:8080|innet $S-ipt $CC|1|-"
  "f.ebpf-full-path|10.198.3.2:8080|inpod $CG/ebf $S-ebf $CC|1|sockmap_redirected"
  "g.iptables-pod-to-pod|$GB:8080|innet $S-ga $CC|1|-"
  "h.ebpf-pod-to-pod|$HB:8080|inpod $CG/ha $S-ha $CC|1|inbound_delivery"
  "i.no-proxy-pod-to-pod|$GB:8081|innet $S-ga $CC|1|-"
  "j.ebpf-client-hop-skipped|$HB:8080|inpod $CG/ha $S-ha $CC setpriv --reuid=1337 --regid=1337 --clear-groups|1|redirected_inbound"
)
counter() { $B/meshtune-bpf status | field counters | python3 -c "import sys,ast; print(ast.literal_eval(sys.stdin.read())['$1'])"; }
OUT=$(mktemp)
for r in $(seq $ROUNDS); do
  for v in "${variants[@]}"; do
    IFS='|' read -r label addr runner cr must <<< "$v"
    [ "$must" = - ] || c0=$(counter $must)
    pp=$($runner $B/mtnet pingpong "$addr" 64 "$ITERS"); st=$($runner $B/mtnet stream "$addr" 4096 "$MB")
    rate=0; [ "$cr" = 1 ] && rate=$($runner $B/mtnet connrate "$addr" "$SECS" | field perSecond)
    # The work happened on the path the row names, or no ratio is printed.
    if [ "$must" != - ] && [ "$(counter $must)" -le "$c0" ]; then
      echo "datapath bench: $label ran without $must growing: it did not take the eBPF path" >&2; exit 1
    fi
    echo "$r $label $(echo "$pp" | field p50us) $(echo "$pp" | field p99us) $(echo "$st" | field MBps) $rate" >> $OUT
  done
  echo "round $r/$ROUNDS done" >&2
done
# One pod->pod round trip, counted system-wide by perf's software events and tracepoints (this VM
# has no hardware counters): syscalls, wakeups and context switches per 64 B round trip.
if command -v perf >/dev/null; then
  echo "one pod->pod round trip (perf stat -a, per round trip, includes background noise):" >&2
  for v in "g.iptables-pod-to-pod|$GB:8080|innet $S-ga $CC" "h.ebpf-pod-to-pod|$HB:8080|inpod $CG/ha $S-ha $CC"; do
    IFS='|' read -r label addr runner <<< "$v"
    perf stat -a -x, -e raw_syscalls:sys_enter,sched:sched_wakeup,context-switches -o /tmp/mt-perf-$ID.csv \
      bash -c "$(declare -f inpod innet); $runner $B/mtnet pingpong $addr 64 5000" > /dev/null
    python3 - "$label" /tmp/mt-perf-$ID.csv <<'PY' >&2
import sys
c = {l.split(",")[2]: float(l.split(",")[0]) for l in open(sys.argv[2]) if l.count(",") > 2 and l.split(",")[0].replace(".", "").isdigit()}
print(f"  {sys.argv[1]:24} syscalls {c.get('raw_syscalls:sys_enter', 0) / 5000:5.1f}  wakeups {c.get('sched:sched_wakeup', 0) / 5000:5.1f}  context switches {c.get('context-switches', 0) / 5000:5.1f}")
PY
  done
  rm -f /tmp/mt-perf-$ID.csv
fi
$B/meshtune-bpf status | python3 /dev/fd/3 3<<'PY' >&2
import json, sys
progs = [p for p in json.load(sys.stdin)["programs"] if p.get("attached") and p.get("runCount")]
print("where the time goes (kernel.bpf_stats_enabled, whole run, cgroup-attached programs):")
for p in progs:
    name, runs, ns = p["program"], p["runCount"], p["runTimeNs"] / p["runCount"]
    print(f"  {name:16} {runs:>12,} runs  {ns:7.0f} ns/run")
PY
spliced="$(counter sockmap_redirected) $(counter redirected_inbound) $(counter inbound_delivery)"

python3 - "$OUT" "$ROUNDS" "$spliced" "$CC" "$SC" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    r, label, *vals = line.split()
    rows.setdefault(label, []).append(list(map(float, vals)))
med = lambda k, i: st.median(x[i] for x in rows[k])
spread = lambda k, i: (min(x[i] for x in rows[k]), max(x[i] for x in rows[k]))
a, d, g = "a.loopback-tcp", "d.iptables-full-path", "g.iptables-pod-to-pod"
print(f"datapath bench: {sys.argv[2]} interleaved rounds, client on CPU {sys.argv[4]}, proxies/servers on CPU {sys.argv[5]}; median [min-max]")
print(f"{'path':26} {'p50 µs':>20} {'p99 µs':>9} {'4KB MB/s':>20} {'conn/s':>16} {'p50/a':>6} {'MB/s /a':>7}")
for k in rows:
    p50, (lo, hi) = med(k, 0), spread(k, 0)
    mb, (mlo, mhi) = med(k, 2), spread(k, 2)
    cr = med(k, 3)
    crs = f"{cr:8.0f}" if cr else f"{'-':>8}"
    print(f"{k:26} {p50:7.1f} [{lo:5.1f}-{hi:5.1f}] {med(k,1):9.1f} {mb:7.0f} [{mlo:5.0f}-{mhi:5.0f}] {crs:>16} {p50/med(a,0):6.2f} {mb/med(a,2):7.2f}")
b, f, h = "b.ebpf-app-proxy-splice", "f.ebpf-full-path", "h.ebpf-pod-to-pod"
def target(name, got, op, want):
    ok = got <= want if op == "<=" else got >= want
    print(f"  {name:58} {got:5.2f}x  (target {op} {want})  {'met' if ok else 'MISSED'}")
print("targets (same run):")
target("same-node pod->pod p50, eBPF / iptables (h/g)", med(h, 0) / med(g, 0), "<=", 0.5)
# The issue's RTT goal depends on placement: <= 0.6x with client and proxy on one CPU, <= 1.0x split.
target("app<->proxy RTT p50, eBPF splice / loopback (b/a)", med(b, 0) / med(a, 0), "<=", 0.6 if sys.argv[4] == sys.argv[5] else 1.0)
target("app<->proxy 4 KB throughput, eBPF splice / loopback (b/a)", med(b, 2) / med(a, 2), ">=", 1.5)
target("connection setup rate, app->proxy eBPF / iptables (b/e)", med(b, 3) / med("e.iptables-app-proxy", 3), ">=", 1.3)
target("connection setup rate, full path eBPF / iptables (f/d)", med(f, 3) / med(d, 3), ">=", 1.3)
target("connection setup rate, pod->pod eBPF / iptables (h/g)", med(h, 3) / med(g, 3), ">=", 1.3)
target("full path p50, eBPF / iptables (f/d)", med(f, 0) / med(d, 0), "<=", 1.0)
i = "i.no-proxy-pod-to-pod"
print(f"  floor if both proxy hops were skipped (i/g): p50 {med(i, 0) / med(g, 0):.2f}x, conn/s {med(i, 3) / med(g, 3):.2f}x  (not shipped)")
j = "j.ebpf-client-hop-skipped"
print(f"  the client proxy hop skipped, eBPF (j/g): p50 {med(j, 0) / med(g, 0):.2f}x, conn/s {med(j, 3) / med(g, 3):.2f}x  (not shipped: the most a cluster allows, see README)")
print(f"  the copy floor for app<->proxy bytes: a Unix socket (c/a) {med('c.unix-socket', 2) / med(a, 2):.2f}x throughput, {med('c.unix-socket', 0) / med(a, 0):.2f}x p50")
sp, ri, idl = sys.argv[3].split()
print(f"splice evidence: {sp} messages spliced, {ri} proxy->peer inbound captures, {idl} inbound deliveries")
PY
rm -f $OUT
