#!/usr/bin/env bash
# make bench: cost of the kernel TCP probes (bpf/tcpstats.bpf.c) on a meshed pod's traffic.
# A pod cgroup (child of a test kubepods cgroup, never the root) talks to a netns over a veth:
# request/response round trips and connects, as the proxy's uid (not redirected), with the probes
# attached and detached, interleaved, 3 rounds, client and server pinned to one CPU. Prints the
# RTT and connect-rate ratios (attached / detached) and the probes' run time per event from
# kernel.bpf_stats_enabled (bpf_prog_info run_time_ns / run_cnt), per round: median and spread.
set -euo pipefail
B=build; CPU=${CPU:-1}; ID=$$; CG=/sys/fs/cgroup/unified/meshtune-bench-$ID; NS=mtbt$ID
cleanup() {
  $B/meshtune-bpf unload >/dev/null 2>&1 || true
  kill $SRV 2>/dev/null || true; ip netns del $NS 2>/dev/null || true
  ip link del mtbh$ID 2>/dev/null || true; rmdir $CG/pod $CG 2>/dev/null || true
  sysctl -q kernel.bpf_stats_enabled=$OLD_STATS || true
}
OLD_STATS=$(sysctl -n kernel.bpf_stats_enabled); SRV=
trap cleanup EXIT
mkdir -p $CG/pod
ip netns add $NS; ip link add mtbh$ID type veth peer name mtbn$ID; ip link set mtbn$ID netns $NS
ip addr add 10.195.9.1/24 dev mtbh$ID; ip link set mtbh$ID up
ip -n $NS addr add 10.195.9.2/24 dev mtbn$ID; ip -n $NS link set mtbn$ID up; ip -n $NS link set lo up
$B/meshtune-bpf load --cgroup $CG --no-splice >/dev/null
echo "set $CG/pod id=1 flags=7" | $B/meshtune-bpf pods >/dev/null
ip netns exec $NS taskset -c $CPU $B/mtnet serve 10.195.9.2:7000 >/dev/null & SRV=$!
sleep 0.3
sysctl -q kernel.bpf_stats_enabled=1
inpod() { sh -c 'echo $$ > "$0/cgroup.procs" && exec setpriv --reuid 1337 --regid 1337 --clear-groups taskset -c '$CPU' "$@"' $CG/pod "$@"; }
json() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
declare -a rt_on rt_off cr_on cr_off ns_ev
for round in 1 2 3; do
  for mode in off on; do
    if [ $mode = on ]; then $B/meshtune-tcpstats load --cgroup $CG >/dev/null; fi
    p50=$(inpod $B/mtnet pingpong 10.195.9.2:7000 64 20000 | json p50us)
    rate=$(inpod $B/mtnet connrate 10.195.9.2:7000 2 | json perSecond)
    if [ $mode = on ]; then
      st=$($B/meshtune-tcpstats status); cnt=$(echo "$st" | json runCount); t=$(echo "$st" | json runTimeNs)
      ns_ev+=($(awk -v t=$t -v c=$cnt 'BEGIN{printf "%.0f", c ? t/c : 0}'))
      $B/meshtune-tcpstats unload >/dev/null
      rt_on+=($p50); cr_on+=($rate)
    else rt_off+=($p50); cr_off+=($rate); fi
  done
done
med() { printf "%s\n" "$@" | sort -g | sed -n 2p; }
spread() { printf "%s\n" "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1; a[NR]=$1} END{printf "%.0f%%", (hi-lo)/a[2]*100}'; }
ratio() { awk -v a=$1 -v b=$2 'BEGIN{printf "%.3f", a/b}'; }
echo "kernel TCP probes (tcpstats), 3 interleaved rounds, CPU $CPU, veth to a netns, median (spread):"
echo "  64 B RTT p50      : detached $(med "${rt_off[@]}") µs ($(spread "${rt_off[@]}")), attached $(med "${rt_on[@]}") µs ($(spread "${rt_on[@]}"))   ratio $(ratio $(med "${rt_on[@]}") $(med "${rt_off[@]}"))x"
echo "  connects/s        : detached $(med "${cr_off[@]}") ($(spread "${cr_off[@]}")), attached $(med "${cr_on[@]}") ($(spread "${cr_on[@]}"))   ratio $(ratio $(med "${cr_on[@]}") $(med "${cr_off[@]}"))x"
echo "  probe run time    : $(med "${ns_ev[@]}") ns per sockops event ($(spread "${ns_ev[@]}"))"
