// A keyed work queue (client-go workqueue semantics, reduced): a key queued while it is
// already waiting runs once; a key is never processed twice at the same time; failures are
// retried with exponential backoff and never stop the loop.
export class WorkQueue {
  private readonly waiting = new Set<string>();
  private readonly active = new Set<string>();
  private readonly again = new Set<string>();
  private readonly failures = new Map<string, number>();
  private idle: (() => void)[] = [];
  private timers = new Set<NodeJS.Timeout>();
  stopped = false;

  constructor(
    private readonly work: (key: string) => Promise<void>,
    private readonly onError: (key: string, e: unknown) => void,
    private readonly baseDelayMs = 200,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.again.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    this.waiting.add(key);
    queueMicrotask(() => this.run(key));
  }

  private readonly later = new Map<string, NodeJS.Timeout>();
  /** Queue `key` after `ms` (client-go AddAfter); the earliest pending time wins. */
  addAfter(key: string, ms: number): void {
    if (this.stopped || this.later.has(key)) return;
    const t = setTimeout(
      () => {
        this.later.delete(key);
        this.timers.delete(t);
        this.add(key);
      },
      Math.max(0, ms),
    );
    this.later.set(key, t);
    this.timers.add(t);
  }

  private async run(key: string): Promise<void> {
    if (!this.waiting.delete(key) || this.stopped) return this.settle();
    this.active.add(key);
    try {
      await this.work(key);
      this.failures.delete(key);
    } catch (e) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      this.onError(key, e);
      const t = setTimeout(
        () => {
          this.timers.delete(t);
          this.add(key);
        },
        Math.min(this.baseDelayMs * 2 ** (n - 1), 60_000),
      );
      this.timers.add(t);
    } finally {
      this.active.delete(key);
      if (this.again.delete(key)) this.add(key);
      this.settle();
    }
  }

  private settle(): void {
    if (this.waiting.size === 0 && this.active.size === 0) for (const f of this.idle.splice(0)) f();
  }

  /** Resolves when nothing is waiting or running (retries scheduled later do not count). */
  drained(): Promise<void> {
    if (this.waiting.size === 0 && this.active.size === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.later.clear();
  }
}
