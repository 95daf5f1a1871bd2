#!/usr/bin/env bash
# make bench (ambient): an ambient pod's app -> ztunnel -> remote server, captured two ways, with
# the same ztunnel stand-in (build/mtztunnel: in-pod listeners, SO_ORIGINAL_DST, relay):
#   i  istio-cni-style in-pod iptables: the nat OUTPUT REDIRECT to 15001 of
#      cni/pkg/iptables/testdata/default.golden (its shape, applied by iptables-restore in the pod)
#   e  meshtune's eBPF: the pod enrolled with `pods ambient` + `pods set` (connect hook + splice)
# Per round and variant (interleaved, client pinned to CPU 0, ztunnel and server to CPU 1):
# 64 B ping-pong p50/p99, 4 KB stream, connection rate. Then enrolment time per pod: the rule set
# applied by iptables-restore in a fresh netns (as istio-cni does per pod) against the agent's two
# map commands over its long-lived `meshtune-bpf pods` process, 20 pods each.
# Every figure is printed only after checking ztunnel received the connections. Root only;
# everything is removed on exit. ROUNDS, ITERS, MB, SECS, PODS tune the run.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/build; CC=${CLIENT_CPU:-0}; SC=${SERVER_CPU:-1}; ROUNDS=${ROUNDS:-3}; ITERS=${ITERS:-20000}; MB=${MB:-300}; SECS=${SECS:-2}; PODS=${PODS:-20}
ID=$$; CG=/sys/fs/cgroup/unified/meshtune-amb-bench-$ID; S=mta$ID
NS=($S-up $S-i $S-e)
pids=()
. bench/lib.sh
cleanup() {
  bench_teardown $CG "${NS[@]}" $(for k in $(seq $PODS); do echo $S-en$k; done)
  [ -n "${KEEP_LOGS:-}" ] || rm -f /tmp/mt-amb-$ID.*
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "ambient bench needs root"; exit 1; }
command -v iptables-restore >/dev/null || { echo "ambient bench needs iptables-restore"; exit 1; }


mkdir -p $CG/i $CG/e $CG/zt
for n in "${NS[@]}"; do ip netns add $n; ip -n $n link set lo up; ip netns exec $n sysctl -qw net.ipv4.tcp_tw_reuse=1; done
k=0; for v in i e; do k=$((k+1))
  ip link add eth0 netns $S-$v type veth peer name u$v netns $S-up
  ip -n $S-$v addr add 10.197.$k.2/24 dev eth0; ip -n $S-$v link set eth0 up; ip -n $S-$v route add default via 10.197.$k.1
  ip -n $S-up addr add 10.197.$k.1/24 dev u$v; ip -n $S-up link set u$v up
done
ip -n $S-up addr add 10.197.99.1/32 dev lo
bg ip netns exec $S-up taskset -c $SC $B/mtnet serve 10.197.99.1:8080
ZT_LOG=/tmp/mt-amb-$ID.zt
sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' $CG/zt taskset -c $SC $B/mtztunnel /run/netns/$S-i /run/netns/$S-e > $ZT_LOG 2>&1 & pids+=($!); ZT=$!
for _ in $(seq 50); do grep -q ready $ZT_LOG && break; sleep 0.1; done

# The golden file's outbound rule set, in shape (mark 0x539/0xfff is ztunnel's own traffic).
RULES=/tmp/mt-amb-$ID.rules
cat > $RULES <<'EOF'
*nat
:ISTIO_OUTPUT - [0:0]
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -d 169.254.7.127/32 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT ! -o lo -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
COMMIT
EOF
ip netns exec $S-i iptables-restore --noflush < $RULES
$B/meshtune-bpf load --cgroup $CG > /dev/null
printf '%s\n' "ambient 1 /run/netns/$S-e $ZT ips=10.197.2.2" "set $CG/e id=1 flags=8 ips=10.197.2.2" | $B/meshtune-bpf pods | grep -q '"ok":false' && { echo "ambient bench: enrolment failed"; exit 1; }

variants=("i.iptables-redirect|inpod $CG/i $S-i $CC" "e.ebpf-ambient|inpod $CG/e $S-e $CC")
OUT=/tmp/mt-amb-$ID.out
for r in $(seq $ROUNDS); do
  for v in "${variants[@]}"; do
    IFS='|' read -r label runner <<< "$v"
    pp=$($runner $B/mtnet pingpong 10.197.99.1:8080 64 "$ITERS"); st=$($runner $B/mtnet stream 10.197.99.1:8080 4096 "$MB")
    rate=$($runner $B/mtnet connrate 10.197.99.1:8080 "$SECS" 2>>/tmp/mt-amb-$ID.err | field perSecond) || { echo "ambient bench: $label connrate failed: $(tail -1 /tmp/mt-amb-$ID.err)"; [ -n "${DEBUG_PAUSE:-}" ] && sleep 600; exit 1; }
    echo "$r $label $(echo "$pp" | field p50us) $(echo "$pp" | field p99us) $(echo "$st" | field MBps) $rate" >> $OUT
  done
  echo "round $r/$ROUNDS done" >&2
done
seen_i=$(grep -c '^out 0 10.197.99.1:8080' $ZT_LOG || true); seen_e=$(grep -c '^out 1 10.197.99.1:8080' $ZT_LOG || true)

# Enrolment time per pod: fresh netns each, rules in by iptables-restore (istio-cni's way) vs the
# agent's two commands; timed around the work only, medians of $PODS.
python3 - "$B/meshtune-bpf" "$S" "$PODS" "$RULES" "$CG" "$ZT" > /tmp/mt-amb-$ID.enrol <<'PY'
import os, subprocess, sys, time, statistics as st
loader, S, n, rules, cg, zt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
ipt, ebpf = [], []
pods = subprocess.Popen([loader, "pods"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
def cmd(line):
    pods.stdin.write(line + "\n"); pods.stdin.flush(); return pods.stdout.readline()
for k in range(1, n + 1):
    ns = f"{S}-en{k}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    t = time.perf_counter()
    subprocess.run(["ip", "netns", "exec", ns, "iptables-restore", "--noflush", rules], check=True)
    ipt.append(time.perf_counter() - t)
    # The same pod enrolled by eBPF: ztunnel's listeners are in the e pod; its netns carries them.
    os.makedirs(f"{cg}/en{k}", exist_ok=True)
    t = time.perf_counter()
    a = cmd(f"ambient {100 + k} /run/netns/{S}-e {zt} ips=10.197.50.{k}")
    s = cmd(f"set {cg}/en{k} id={100 + k} flags=8 ips=10.197.50.{k}")
    ebpf.append(time.perf_counter() - t)
    if '"ok":true' not in a or '"ok":true' not in s:
        sys.exit(f"enrolment {k} failed: {a} {s}")
    cmd(f"del {100 + k}"); cmd(f"unambient {100 + k} ips=10.197.50.{k}")
    os.rmdir(f"{cg}/en{k}")
print(f"{st.median(ipt) * 1e3:.2f} {min(ipt) * 1e3:.2f} {max(ipt) * 1e3:.2f} {st.median(ebpf) * 1e3:.3f} {min(ebpf) * 1e3:.3f} {max(ebpf) * 1e3:.3f}")
PY

python3 - "$OUT" "$ROUNDS" "$seen_i" "$seen_e" "$(cat /tmp/mt-amb-$ID.enrol)" "$PODS" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    r, label, *vals = line.split()
    rows.setdefault(label, []).append(list(map(float, vals)))
seen_i, seen_e = int(sys.argv[3]), int(sys.argv[4])
rounds = int(sys.argv[2])
# The work happened: every round's connection-rate run alone makes thousands of connections
# through ztunnel; fewer than one per round and variant would mean the capture did nothing.
if seen_i < rounds or seen_e < rounds:
    sys.exit(f"ambient bench: ztunnel saw {seen_i} (iptables) and {seen_e} (eBPF) connections: capture did not happen")
med = lambda k, i: st.median(x[i] for x in rows[k])
spread = lambda k, i: (min(x[i] for x in rows[k]), max(x[i] for x in rows[k]))
i, e = "i.iptables-redirect", "e.ebpf-ambient"
print(f"ambient bench: app -> ztunnel stand-in -> remote, {rounds} interleaved rounds; median [min-max]")
print(f"{'path':22} {'p50 µs':>20} {'p99 µs':>9} {'4KB MB/s':>20} {'conn/s':>8}")
for k in (i, e):
    lo, hi = spread(k, 0); mlo, mhi = spread(k, 2)
    print(f"{k:22} {med(k,0):7.1f} [{lo:5.1f}-{hi:5.1f}] {med(k,1):9.1f} {med(k,2):7.0f} [{mlo:5.0f}-{mhi:5.0f}] {med(k,3):8.0f}")
print(f"ratios eBPF / iptables: p50 {med(e,0)/med(i,0):.2f}x, p99 {med(e,1)/med(i,1):.2f}x, 4 KB throughput {med(e,2)/med(i,2):.2f}x, connections/s {med(e,3)/med(i,3):.2f}x")
print(f"ztunnel received {seen_i} (iptables) and {seen_e} (eBPF) connections")
im, ilo, ihi, em, elo, ehi = map(float, sys.argv[5].split())
print(f"enrolment per pod ({sys.argv[6]} pods): iptables-restore {im:.2f} ms [{ilo:.2f}-{ihi:.2f}], eBPF map commands {em:.3f} ms [{elo:.3f}-{ehi:.3f}]  ({im/em:.0f}x)")
PY
