// Refused connections on stderr without letting a flood write a line each: the first of each reason is printed at
// once, the rest are counted and summed up at most once per interval.

export class RefusalLog {
  private readonly counts = new Map<string, number>();
  private last = -Infinity;
  private timer: ReturnType<typeof setTimeout> | null = null;
  constructor(
    private readonly write: (line: string) => void,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(why: string): void {
    // The reason without its address or figures, so that one flood is one key.
    const key = why.replace(/[0-9a-f]*:[0-9a-f:.]+|\d+(\.\d+)*/gi, '#').slice(0, 120);
    const t = this.now();
    if (t - this.last >= this.intervalMs && !this.counts.size) {
      this.last = t;
      this.write(`refused a connection: ${why}`);
      return;
    }
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.timer ??= setTimeout(() => this.flush(), Math.max(0, this.last + this.intervalMs - t));
    this.timer.unref?.();
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.counts.size) return;
    this.last = this.now();
    const parts = [...this.counts].map(([k, n]) => `${n} x ${k}`);
    this.counts.clear();
    this.write(`refused connections in the last ${this.intervalMs / 1e3} s: ${parts.join('; ')}`);
  }
}
