// TEST DOUBLE: one Envoy proxy with N worker threads. Envoy instantiates a plugin's Wasm VM once
// per worker (a thread-local copy: the HTTP filter factory sets a TLS slot with
// Common::Wasm::getOrCreateThreadLocalPlugin, source/extensions/filters/http/wasm/config.cc),
// each with its own root context, its own tick timer and its own filter state; a connection, and
// every stream on it, stays on the worker that accepted it. So each worker's filter reports on
// its own, and the collector must merge several reports from one pod. Streams are spread round
// robin here (the kernel's SO_REUSEPORT / Envoy's connection balancer decide in reality).
import { HostBuilder, type Callout, type HttpExchange, type ProxyHost } from "./host.js";

export class EnvoyWorkers {
  readonly vms: ProxyHost[];
  private next = 0;
  constructor(build: () => HostBuilder, workers: number) {
    this.vms = Array.from({ length: workers }, () => build().build());
    for (const vm of this.vms) vm.start();
  }
  set clusters(f: ((name: string) => boolean) | null) {
    for (const vm of this.vms) vm.clusters = f;
  }
  http(x: HttpExchange): { request: number; response: number } {
    const vm = this.vms[this.next++ % this.vms.length];
    return vm.http(x);
  }
  /** Every worker's timer fires once (their periods are equal: one pluginConfig). */
  tick(): void {
    for (const vm of this.vms) vm.tick();
  }
  advance(ms: number): void {
    for (const vm of this.vms) vm.advance(ms);
  }
  /** Callouts not answered yet, with the VM that made them. */
  pending(): { vm: ProxyHost; c: Callout }[] {
    return this.vms.flatMap((vm) => vm.pending().map((c) => ({ vm, c })));
  }
  metric(name: string): bigint {
    return this.vms.reduce((a, vm) => a + (vm.metric(name) ?? 0n), 0n);
  }
}
