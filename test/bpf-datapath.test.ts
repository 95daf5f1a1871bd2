// The eBPF datapath on this kernel, for real: redirect, SO_ORIGINAL_DST, sockmap splice,
// integrity, epoll readiness from Node, lifecycle. Each test gets its own child cgroup.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { statSync } from "node:fs";
import {
  bpfUnavailable,
  bpftool,
  counters,
  loader,
  sh,
  waitFor,
  withFixture,
  withForeignSockmap,
  type Fixture,
  MTNET,
  MTPROXY,
  CGROUP_ROOT,
  LOADER,
} from "./helpers/bpf.js";
import { ROOT, meshtune } from "./helpers/cli.js";

const why = bpfUnavailable();
const PROXY_PORT = "15901";
const ECHO_NODE = join(ROOT, "test", "fixtures", "epoll-echo.mjs");

if (why && process.env.CI !== "true") {
  console.log(`bpf-datapath: skipped (${why}); under CI=true this fails`);
} else if (why) {
  test("BPF datapath available on CI", () => {
    assert.unreachable(`BPF unavailable: ${why}`);
  });
} else {
  const delta = (before: Record<string, number>, k: string) => (counters()[k] ?? 0) - (before[k] ?? 0);
  // The loader as the node DaemonSet runs it: root with only CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON
  // (manifests/node-daemonset.yaml), so no CAP_SYS_ADMIN.
  const asDaemonSet = (...args: string[]) =>
    sh("setpriv", ["--bounding-set", "-all,+bpf,+net_admin,+perfmon", "--", LOADER, ...args]);
  // The fixture's pod meshed, its proxy up, a server in the netns: the server's address.
  async function capturedPod(f: Fixture): Promise<string> {
    f.netnsUp();
    const dst = `${f.remote4}:8080`;
    await f.start(MTNET, ["serve", dst], { inCgroup: false, netns: true });
    assert.is(f.load("--proxy-port", PROXY_PORT).code, 0);
    await f.start(MTPROXY, [PROXY_PORT, "1337"]);
    return dst;
  }

  test("refuses the root cgroup with one line; probe passes here", () => {
    const r = loader("load", "--cgroup", CGROUP_ROOT);
    assert.is(r.code, 1);
    assert.is(
      r.stderr.trim(),
      `meshtune-bpf: refusing to attach to the root cgroup ${CGROUP_ROOT}: pass a child cgroup`,
    );
    assert.is(loader("status").json.loaded, false);
    assert.is(loader("probe").code, 0);
    const notV2 = loader("probe", "--cgroup", "/tmp");
    assert.is(notV2.code, 1);
    assert.is(notV2.stderr.trim(), "meshtune-bpf: cgroup /tmp is not on a cgroup v2 filesystem");
    const missing = loader("load", "--cgroup", "/sys/fs/cgroup/unified/meshtune-test-missing");
    assert.is(missing.code, 1);
    assert.match(
      missing.stderr.trim(),
      /^meshtune-bpf: cgroup \/sys\/fs\/cgroup\/unified\/meshtune-test-missing: No such file or directory$/,
    );
  });

  test("another program on the cgroup where meshtune attaches (a socket LB's connect hook): probe and load refuse, naming it; gone, load works", () =>
    withFixture(async (f) => {
      const pin = `/sys/fs/bpf/meshtune-test-foreign-${f.id}`;
      bpftool("prog", "load", join(ROOT, "build", "foreign.bpf.o"), pin, "type", "cgroup/connect4");
      try {
        bpftool("cgroup", "attach", f.cgroup, "connect4", "pinned", pin, "multi");
        try {
          const p = loader("probe", "--cgroup", f.cgroup);
          assert.is(p.code, 1);
          assert.match(p.stderr, /other BPF programs attached where meshtune would attach: connect4 other_sock_lb/);
          // With only the DaemonSet's capabilities, names cannot be read (CAP_SYS_ADMIN): the
          // program is still found, by id, and still keeps the datapath off.
          const limited = asDaemonSet("probe", "--cgroup", f.cgroup);
          assert.is(limited.code, 1, limited.stdout + limited.stderr);
          assert.match(
            limited.stderr,
            /other BPF programs attached where meshtune would attach: connect4 id \d+ \(names need CAP_SYS_ADMIN\)/,
          );
          const l = loader("load", "--cgroup", f.cgroup);
          assert.is(l.code, 1, "the datapath stays off rather than guess how the two compose");
          assert.match(l.stderr, /other_sock_lb/);
          assert.is(loader("status").json.loaded, false);
        } finally {
          bpftool("cgroup", "detach", f.cgroup, "connect4", "pinned", pin);
        }
        assert.is(f.load().code, 0, "nothing foreign left: load works");
        // meshtune's own programs are told apart by its pins, not by names it may not read.
        const own = asDaemonSet("probe", "--cgroup", f.cgroup);
        assert.is(own.code, 0, own.stdout + own.stderr);
        assert.ok(
          JSON.parse(own.stdout).checks.some(
            (c: { feature: string; ok: boolean }) => c.feature === "foreign-programs" && c.ok,
          ),
          own.stdout,
        );
      } finally {
        sh("rm", ["-f", pin]);
      }
    }));

  // A socket has one psock: with two splicers on a node each would silently lose the sockets the
  // other took first (sock_map_link: EBUSY). Sockmap programs hang off maps, not cgroups, so the
  // probe lists the node's programs; meshtune then captures and does not splice.
  test("another sockmap user on the node (an sk_msg on its own sockhash): probe and load say so; capture works, nothing spliced; gone, splice is back", () =>
    withFixture(async (f) => {
      await withForeignSockmap(f.id, null, async () => {
        const p = loader("probe", "--cgroup", f.cgroup);
        assert.is(p.code, 0, "capture is unaffected: probe passes");
        // Listing the node's programs needs CAP_SYS_ADMIN: with the DaemonSet's capabilities the
        // check says it could not look, rather than "none".
        const limited = asDaemonSet("probe", "--cgroup", f.cgroup);
        const lc = JSON.parse(limited.stdout).checks.find((c: { feature: string }) => c.feature === "foreign-sockmap");
        assert.match(
          lc.detail,
          /^not checked: listing BPF programs needs CAP_SYS_ADMIN; .*refused \(EBUSY\) and closes the splice gate$/,
        );
        const check = p.json.checks.find((c: { feature: string }) => c.feature === "foreign-sockmap");
        assert.is(check.ok, false);
        assert.match(check.detail, /another sockmap user on this node: sk_msg other_sk_msg \(id \d+\)/);
        f.netnsUp();
        await f.start(MTNET, ["serve", `${f.remote4}:8080`], { inCgroup: false, netns: true });
        const l = f.load("--proxy-port", PROXY_PORT);
        assert.is(l.code, 0, l.stderr);
        assert.is(l.json.splice, false);
        assert.match(l.json.spliceOff, /^another sockmap user on this node: sk_msg other_sk_msg/);
        await f.start(MTPROXY, [PROXY_PORT, "1337"]);
        const before = counters();
        const r = f.run(MTNET, ["integrity", `${f.remote4}:8080`, "200", "4", "5"]);
        assert.is(r.code, 0, r.stdout + r.stderr);
        assert.is(delta(before, "redirected"), 4, "captured");
        assert.is(delta(before, "sockmap_inserted"), 0, "nothing spliced");
        loader("unload");
      });
      const again = f.load("--proxy-port", PROXY_PORT);
      assert.is(again.code, 0, again.stderr);
      assert.is(again.json.splice, true, "nothing foreign left: splice is back");
    }));

  // The load-time checks list the attach cgroup, its ancestors and (with CAP_SYS_ADMIN) the node's
  // sockmap programs; a program on a pod's own cgroup, below the attach point, arriving later, is
  // none of these. Its sock_ops runs before meshtune's (a descendant cgroup's programs run first)
  // and takes the pod's sockets into its sockhash, so meshtune's insert is refused with EBUSY: the
  // datapath then closes its splice gate in the kernel and never takes a socket from it.
  test("a foreign sock_ops + sk_msg on a pod's own cgroup: EBUSY closes the splice gate in the kernel; capture goes on; splice-gate open reopens", () =>
    withFixture(async (f) => {
      const dst = await capturedPod(f);
      assert.equal(loader("status").json.spliceGate, { open: true });
      let before = counters();
      assert.is(f.run(MTNET, ["integrity", dst, "20", "2", "3"]).code, 0);
      assert.is(delta(before, "sockmap_inserted"), 4, "spliced while alone");
      await withForeignSockmap(f.id, f.pod, async () => {
        before = counters();
        const r = f.run(MTNET, ["integrity", dst, "200", "4", "5"]);
        assert.is(r.code, 0, r.stdout + r.stderr);
        assert.is(delta(before, "redirected"), 4, "capture goes on");
        assert.ok(delta(before, "sockmap_insert_busy") >= 1, "the kernel refused meshtune a socket (EBUSY)");
        assert.is(
          delta(before, "sockmap_inserted"),
          0,
          "its sock_ops runs first (a descendant cgroup's do) and takes them all",
        );
        const gate = loader("status").json.spliceGate;
        assert.is(gate.open, false);
        assert.match(gate.reason, /^another program holds the psock of a socket meshtune would splice \(EBUSY\)/);
        assert.match(
          f.pods("gate"),
          /^\{"ok":true,"gate":\{"open":false,"reason":"another program/,
          "the agent's view",
        );
        const shown = meshtune(["bpf", "splice-gate"]);
        assert.is(shown.code, 0, shown.stderr);
        assert.is(JSON.parse(shown.stdout).open, false, "meshtune bpf splice-gate shows it");
        const busy = delta(before, "sockmap_insert_busy");
        assert.is(f.run(MTNET, ["integrity", dst, "20", "2", "3"]).code, 0);
        assert.is(delta(before, "sockmap_insert_busy"), busy, "closed: no more inserts tried");
        assert.ok(delta(before, "sockmap_gated") >= 4, "both sockets of each new pair left alone");
      });
      // The other user is gone: the operator reopens, and new pairs are spliced again.
      assert.equal(loader("splice-gate", "open").json, { open: true });
      before = counters();
      assert.is(f.run(MTNET, ["integrity", dst, "20", "2", "3"]).code, 0);
      assert.is(delta(before, "sockmap_inserted"), 4, "spliced again");
      assert.is(loader("splice-gate", "sideways").code, 1, "a bad argument is refused");
    }));

  // A socket stays in a sockhash until close(), also across connect(AF_UNSPEC) (tcp_bpf has had
  // no unhash handler since 5.16). Its next connect meets meshtune's own psock unless the old
  // entry goes first (EBUSY then must not close the node's gate: any pod can do this); and a new
  // connection reusing its old 4-tuple must not be spliced into it (keys carry the generation).
  test("an app that disconnects a socket (connect(AF_UNSPEC)) and connects it again: spliced afresh each time, the gate stays open", () =>
    withFixture(async (f) => {
      const dst = await capturedPod(f);
      const before = counters();
      const r = f.run(MTNET, ["reconnect", dst, "5"]);
      assert.is(r.code, 0, r.stdout + r.stderr);
      assert.is(delta(before, "redirected"), 6, "every connection captured");
      assert.is(delta(before, "sockmap_reconnected"), 5, "each reconnect removed the socket's old entry first");
      assert.is(delta(before, "sockmap_inserted"), 12, "then spliced afresh, with the proxy's side");
      assert.is(delta(before, "sockmap_insert_busy"), 0);
      assert.is(delta(before, "sockmap_insert_failed"), 0);
      assert.equal(loader("status").json.spliceGate, { open: true }, "one pod cannot stop the node's splicing");
      // Bound to one port, each reconnect has the very same 4-tuple as the last connection, whose
      // accepted socket the proxy may not have closed yet: the echo still comes back to it.
      const bound = f.run("env", [`MTNET_BIND_PORT=${45000 + (process.pid % 5000)}`, MTNET, "reconnect", dst, "5"], {
        timeout: 30_000,
      });
      assert.is(bound.code, 0, bound.stdout + bound.stderr);
      assert.is(delta(before, "sockmap_reconnected"), 10);
      assert.is(delta(before, "sockmap_insert_failed"), 0, "a new generation, a new key");
    }));

  test("a disconnected socket left open, its port reused for the same destination: the new connection gets its own replies", () =>
    withFixture(async (f) => {
      const dst = await capturedPod(f);
      const before = counters();
      const r = f.run("env", [`MTNET_BIND_PORT=${40000 + (process.pid % 5000)}`, MTNET, "portreuse", dst], {
        timeout: 20_000,
      });
      assert.is(r.code, 0, r.stdout + r.stderr);
      assert.equal(JSON.parse(r.stdout), { ok: true });
      assert.is(delta(before, "redirected"), 2);
      assert.is(delta(before, "sockmap_insert_failed"), 0, "the new connection's keys are its own");
      assert.is(delta(before, "sockmap_inserted"), 4, "both connections spliced");
    }));

  // An app that fills its socket's option memory (net.core.optmem_max, which socket storage is
  // charged to: net/core/bpf_sk_storage.c) before connecting, so the datapath cannot record the
  // socket: it is not spliced, its connection works, and nothing reads as another program's psock.
  test("an app that exhausts its socket's option memory (TCP-MD5 keys) before connecting: not spliced, served, the gate stays open", () =>
    withFixture(async (f) => {
      const dst = await capturedPod(f);
      const [host, port] = dst.split(":");
      const before = counters();
      const r = f.run("python3", [join(ROOT, "test", "fixtures", "optmem-full.py"), host, port]);
      assert.is(r.code, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout);
      assert.ok(out.echo, r.stdout);
      assert.ok(out.keys > 100, `option memory filled with ${out.keys} keys`);
      assert.is(delta(before, "redirected"), 1);
      assert.ok(delta(before, "sockmap_insert_failed") >= 1, "the app's socket could not be recorded");
      assert.is(delta(before, "sockmap_insert_busy"), 0);
      assert.equal(loader("status").json.spliceGate, { open: true });
    }));

  // A sock_ops attached after load on the attach cgroup (or an ancestor) runs after meshtune's: it
  // is the one refused, so the kernel's EBUSY never reaches meshtune. The agent's periodic
  // recheck (the load-time query, again) finds it and closes the gate.
  test("a foreign sock_ops + sk_msg attached after load on the attach cgroup: recheck names it and closes the gate", () =>
    withFixture(async (f) => {
      const dst = await capturedPod(f);
      assert.match(f.pods("recheck"), /^\{"ok":true,"foreign":null\}/, "nothing foreign: nothing closed");
      await withForeignSockmap(f.id, f.cgroup, async () => {
        let before = counters();
        assert.is(f.run(MTNET, ["integrity", dst, "20", "2", "3"]).code, 0);
        assert.is(
          delta(before, "sockmap_inserted"),
          4,
          "meshtune's sock_ops runs first: it wins, the other is refused",
        );
        assert.equal(loader("status").json.spliceGate, { open: true }, "so the kernel alone never closes the gate");
        const re = JSON.parse(f.pods("recheck"));
        assert.match(re.foreign, /other BPF programs attached where meshtune would attach: sock_ops other_sockops/);
        assert.is(re.gate.open, false);
        assert.match(re.gate.reason, /^another program was attached where meshtune attaches/);
        before = counters();
        assert.is(f.run(MTNET, ["integrity", dst, "20", "2", "3"]).code, 0);
        assert.is(delta(before, "redirected"), 2, "capture goes on");
        assert.is(delta(before, "sockmap_inserted"), 0, "closed: nothing taken from it");
        assert.ok(delta(before, "sockmap_gated") >= 4);
        assert.equal(JSON.parse(f.pods("recheck")).gate.reason, re.gate.reason, "the first reason stays");
      });
    }));

  test("meshtune bpf wraps the loader: one-line errors, JSON status", () => {
    const r = meshtune(["bpf", "load", "--cgroup", CGROUP_ROOT]);
    assert.is(r.code, 1);
    assert.is(
      r.stderr.trim(),
      `meshtune: bpf: refusing to attach to the root cgroup ${CGROUP_ROOT}: pass a child cgroup`,
    );
    const s = meshtune(["bpf", "status"]);
    assert.is(s.code, 0);
    assert.equal(JSON.parse(s.stdout), { loaded: false });
    assert.is(meshtune(["bpf", "load"]).code, 2, "missing --cgroup is a usage error");
  });

  for (const family of ["IPv4", "IPv6"] as const) {
    test(`redirect ${family}: lands on the proxy, SO_ORIGINAL_DST is the real server, proxy's own connect not redirected`, () =>
      withFixture(async (f) => {
        f.netnsUp();
        const dst = family === "IPv4" ? `${f.remote4}:8080` : `[${f.remote6}]:8080`;
        await f.start(MTNET, ["serve", dst], { inCgroup: false, netns: true });
        assert.is(f.load("--proxy-port", PROXY_PORT, "--proxy-uid", "1337").code, 0);
        const proxy = await f.start(MTPROXY, [PROXY_PORT, "1337"]);
        const before = counters();
        const r = f.run(MTNET, ["integrity", dst, "50", "2", "7"]);
        assert.is(r.code, 0, r.stdout + r.stderr);
        assert.ok(JSON.parse(r.stdout).ok);
        const seen = (o: string) => o.split("\n").filter((l) => l === `origdst ${dst}`).length;
        const out = await waitFor(proxy.out, (o) => seen(o) >= 2);
        assert.is(seen(out), 2, out);
        assert.is(delta(before, "redirected"), 2);
        assert.is(delta(before, "origdst_answered"), 2);
        assert.is(delta(before, "skipped_uid"), 2, "the proxy's upstream connects are skipped by uid: no loop");
      }));
  }

  // The agent sets each pod's proxy UID and GID from its istio-init arguments or securityContext
  // (controller/agent/capture-settings.ts); istio-iptables exempts both (-u, -g).
  for (const [what, runAs] of [
    ["UID", "4242:4242"],
    ["GID", "5000:4343"],
  ] as const)
    test(`per-pod proxy ${what}: the pod's own proxy identity is never captured, whatever the node-wide --proxy-uid`, () =>
      withFixture(async (f) => {
        f.netnsUp();
        const dst = `${f.remote4}:8080`;
        await f.start(MTNET, ["serve", dst], { inCgroup: false, netns: true });
        assert.is(f.load("--proxy-port", PROXY_PORT, "--proxy-uid", "1337").code, 0);
        const set = f.pods(`set ${f.pod} id=1 flags=7 uid=4242 gid=4343`);
        assert.ok(set.includes('"ok":true'), set);
        assert.match(f.pods("list"), /"uid":4242,"gid":4343/);
        const proxy = await f.start(MTPROXY, [PROXY_PORT, runAs]);
        const before = counters();
        const r = f.run(MTNET, ["integrity", dst, "20", "1", "3"]);
        assert.is(r.code, 0, r.stdout + r.stderr);
        await waitFor(proxy.out, (o) => o.includes(`origdst ${dst}`));
        assert.is(delta(before, "redirected"), 1);
        assert.is(delta(before, "skipped_uid"), 1, `the proxy (${runAs}) reaches the server directly: no loop`);
      }));

  test("processes outside the cgroup and excluded ports are not redirected", () =>
    withFixture(async (f) => {
      f.netnsUp();
      await f.start(MTNET, ["serve", `${f.remote4}:8080`], { inCgroup: false, netns: true });
      await f.start(MTNET, ["serve", `${f.remote4}:9090`], { inCgroup: false, netns: true });
      assert.is(f.load("--proxy-port", PROXY_PORT, "--exclude-port", "9090", "--exclude-cidr", "192.0.2.0/24").code, 0);
      // No proxy is listening: a redirected connection would fail.
      const before = counters();
      const outside = f.run(MTNET, ["integrity", `${f.remote4}:8080`, "20", "1", "1"], { inCgroup: false });
      assert.is(outside.code, 0, outside.stderr);
      const excluded = f.run(MTNET, ["integrity", `${f.remote4}:9090`, "20", "1", "1"]);
      assert.is(excluded.code, 0, excluded.stderr);
      assert.is(delta(before, "redirected"), 0);
      assert.is(delta(before, "skipped_excluded_port"), 1);
      const redirected = f.run(MTNET, ["integrity", `${f.remote4}:8080`, "1", "1", "1"], { timeout: 10_000 });
      assert.is.not(redirected.code, 0, "in the cgroup, the same connect goes to the (absent) proxy");
      assert.is(delta(before, "redirected"), 1);
    }));

  // Only sockets of a pair the datapath created are spliced: here app -> proxy (both ends), not
  // the proxy's upstream connection to the remote server, and not a plain local connection.
  test("sockmap: 10k messages 1 B–1 MB both ways, checksummed, over the app↔proxy splice; many connections", () =>
    withFixture(async (f) => {
      f.netnsUp();
      await f.start(MTNET, ["serve", `${f.remote4}:8080`], { inCgroup: false, netns: true });
      assert.is(f.load("--proxy-port", PROXY_PORT).code, 0);
      await f.start(MTPROXY, [PROXY_PORT, "1337"]);
      await f.start(MTNET, ["serve", "127.0.0.1:19902"]);
      const before = counters();
      const r = f.run(MTNET, ["integrity", `${f.remote4}:8080`, "10000", "4", "42"]);
      assert.is(r.code, 0, r.stdout + r.stderr);
      const res = JSON.parse(r.stdout);
      assert.ok(res.ok && res.bytesEachWay > 100e6, r.stdout);
      assert.is(delta(before, "sockmap_inserted"), 8, "app socket + proxy's accepted socket, 4 connections");
      // Only meshtune's sock_ops (TCP, at ESTABLISHED) fills the sockhash; its pin is root's alone,
      // so no one else can put a socket of another family (CVE-2026-43016 needs AF_UNIX) in it.
      assert.is(statSync("/sys/fs/bpf/meshtune/sock_pairs").mode & 0o077, 0, "sockhash pin is 0600");
      assert.ok(delta(before, "sockmap_redirected") >= 10000, `redirected ${delta(before, "sockmap_redirected")}`);
      const many = f.run(MTNET, ["integrity", `${f.remote4}:8080`, "2000", "200", "9"]);
      assert.is(many.code, 0, many.stdout + many.stderr);
      assert.is(delta(before, "sockmap_inserted"), 8 + 400);
      assert.is(delta(before, "sockmap_insert_failed"), 0);
      const local = f.run(MTNET, ["integrity", "127.0.0.1:19902", "100", "2", "3"]);
      assert.is(local.code, 0, local.stderr);
      assert.is(delta(before, "sockmap_inserted"), 8 + 400, "an app's own localhost connection is never spliced");
    }));

  test("sockmap + Node (epoll): every readiness event, half-close and close semantics on a spliced socket", () =>
    withFixture(async (f) => {
      f.netnsUp();
      await f.start(MTNET, ["serve", `${f.remote4}:8080`], { inCgroup: false, netns: true });
      assert.is(f.load("--proxy-port", PROXY_PORT).code, 0);
      await f.start(MTPROXY, [PROXY_PORT, "1337"]);
      const before = counters();
      const r = f.run(process.execPath, [ECHO_NODE, "3000", "16", "--target", `${f.remote4}:8080`], {
        timeout: 60_000,
      });
      assert.is(r.code, 0, r.stdout + r.stderr);
      const res = JSON.parse(r.stdout);
      assert.ok(res.ok, r.stdout);
      assert.is(delta(before, "sockmap_inserted"), 32, "16 app sockets and their 16 proxy peers");
      assert.ok(delta(before, "sockmap_redirected") > 0, "the splice carried the data");
    }));

  test("lifecycle: load twice is idempotent; unload with open spliced connections keeps them working", () =>
    withFixture(async (f) => {
      f.netnsUp();
      await f.start(MTNET, ["serve", `${f.remote4}:8080`], { inCgroup: false, netns: true });
      assert.is(f.load("--proxy-port", PROXY_PORT).code, 0);
      const again = f.load("--proxy-port", PROXY_PORT);
      assert.is(again.code, 0);
      assert.is(again.json.already, true);
      const st = loader("status").json;
      assert.is(
        st.programs.filter((p: any) => p.attached).length,
        8,
        "connect4|6, getsockopt, sockops, and the ambient sendmsg4|6, recvmsg4|6",
      );
      assert.is(
        st.skbVerdict,
        loader("probe").json.wakeupHazard,
        "--skb-verdict auto follows the probe's hazard check",
      );
      await f.start(MTPROXY, [PROXY_PORT, "1337"]);
      const node = await f.start(
        process.execPath,
        [ECHO_NODE, "500", "4", "--pause", "--target", `${f.remote4}:8080`],
        { ready: "paused" },
      );
      assert.ok(counters().sockmap_redirected > 0, "phase 1 went over the splice");
      assert.is(loader("unload").code, 0);
      assert.is(loader("status").json.loaded, false);
      node.proc.stdin!.write("go\n");
      const code = await new Promise((res) => node.proc.once("exit", res));
      assert.is(code, 0, node.out());
      assert.match(node.out(), /"ok":true/);
    }));
}

test.run();
