# Sourced by the datapath, ambient and soak benches: the teardown of what a bench made, and the
# helpers that start its processes. Needs $B (the build directory) and the array pids.

# bench_teardown CGROUP NETNS...: unload the datapath; kill the bench's processes (those in $pids,
# in the cgroup tree, and in its namespaces: one started by a shell function is not in $pids);
# delete the namespaces; remove the cgroup tree (child cgroups only: never the root).
bench_teardown() {
  local cg=$1
  shift
  set +e
  $B/meshtune-bpf unload >/dev/null 2>&1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for d in $(find $cg -name cgroup.procs 2>/dev/null); do xargs -r kill -9 < $d 2>/dev/null; done; wait 2>/dev/null
  for n in "$@"; do ip netns pids $n 2>/dev/null | xargs -r kill -9 2>/dev/null; ip netns del $n 2>/dev/null; done
  for _ in $(seq 50); do [ -d $cg ] || break; find $cg -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null; rmdir $cg 2>/dev/null || sleep 0.1; done
}

# run-in-pod: cgroup first (`ip netns exec` remounts /sys), then netns, then CPU.
inpod() { local cg=$1 ns=$2 cpu=$3; shift 3; sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" ip netns exec "$ns" taskset -c "$cpu" "$@"; }
bg() { "$@" > /dev/null 2>&1 & pids+=($!); sleep 0.2; }
# One field of the JSON a C tool printed last.
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
