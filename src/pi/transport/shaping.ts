// Link profiles: a Channel decorator that makes one party's sends behave as over a link of given bandwidth and
// round-trip time. Each party shapes its own sends (so a pair of shaped endpoints shapes both directions): a message
// occupies the link for (bytes + 4-byte frame header) * 8 / bandwidth after the link is free (busy-until), then
// arrives RTT/2 later; messages are handed to the inner channel at their arrival time, in order. Works over any
// Channel (in-process pair, TCP). Node's timers have 1 ms granularity, so the last millisecond of a wait polls with
// setImmediate (other work of the process runs in between).
// Profiles of Cheetah's scripts: LAN = 3 Gbit/s, 0.3 ms RTT; WAN = 400 Mbit/s, 40 ms RTT.
import { ChannelBase, type Channel } from './channel.js';

export interface LinkProfile {
  /** 'lan', 'wan' or the spec it was parsed from (e.g. '3gbit,0.3ms'). */
  name: string;
  /** Bits per second, each direction. */
  bandwidth: number;
  /** Round-trip time in milliseconds. */
  rttMs: number;
}

export const LINK_PROFILES: Record<string, LinkProfile> = {
  lan: { name: 'lan', bandwidth: 3e9, rttMs: 0.3 },
  wan: { name: 'wan', bandwidth: 400e6, rttMs: 40 },
};

const RATE: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, bps: 1, kbps: 1e3, mbps: 1e6, gbps: 1e9 };
const TIME: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3 };

/** 'lan' | 'wan' | 'none' (null: no shaping) | 'BANDWIDTH,RTT' with units, e.g. '3gbit,0.3ms', '400mbit,40ms'. */
export function parseLink(spec: string): LinkProfile | null {
  const s = spec.trim().toLowerCase();
  if (s === 'none') return null;
  const named = LINK_PROFILES[s];
  if (named) return named;
  const m = /^([\d.]+)\s*([a-z]+)\s*,\s*([\d.]+)\s*([a-z]+)$/.exec(s);
  const rate = m && RATE[m[2]!], time = m && TIME[m[4]!];
  const bandwidth = m && rate ? Number(m[1]) * rate : NaN, rttMs = m && time ? Number(m[3]) * time : NaN;
  if (!(bandwidth > 0) || !(rttMs >= 0)) {
    throw new Error(`link '${spec}': expected lan, wan, none or BANDWIDTH,RTT such as 3gbit,0.3ms (bandwidth units: ${Object.keys(RATE).join(', ')}; time: ${Object.keys(TIME).join(', ')})`);
  }
  return { name: `${m![1]}${m![2]},${m![3]}${m![4]}`, bandwidth, rttMs };
}

/** A list of profiles, e.g. 'lan,wan,none' or 'lan,3gbit,0.3ms' (a custom profile's two parts stay together). */
export function parseLinks(spec: string): (LinkProfile | null)[] {
  const t = spec.split(',').map((x) => x.trim()), out: (LinkProfile | null)[] = [];
  for (let i = 0; i < t.length; i++) {
    if (/^[\d.]/.test(t[i]!) && i + 1 < t.length) { out.push(parseLink(`${t[i]},${t[i + 1]}`)); i++; }
    else out.push(parseLink(t[i]!));
  }
  return out;
}

/** A readable form for reports: '3 Gbit/s, 0.3 ms RTT'. */
export function describeLink(l: LinkProfile | null): string {
  if (!l) return 'no shaping';
  const b = l.bandwidth >= 1e9 ? `${l.bandwidth / 1e9} Gbit/s` : l.bandwidth >= 1e6 ? `${l.bandwidth / 1e6} Mbit/s` : `${l.bandwidth / 1e3} kbit/s`;
  return `${l.name}: ${b}, ${l.rttMs} ms RTT`;
}

const now = () => performance.now();
/** Next turn of the event loop (setImmediate where it exists: Node; a 0 ms timeout in a browser). */
const soon: (f: () => void) => void = typeof setImmediate === 'function' ? (f) => { setImmediate(f); } : (f) => { setTimeout(f, 0); };

class ShapedChannel extends ChannelBase {
  readonly name: string;
  private busyUntil = 0;
  private readonly queue: { data: Uint8Array; at: number }[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private polling = false;
  private closing = false;
  private drained: (() => void)[] = [];

  constructor(private readonly inner: Channel, private readonly link: LinkProfile) {
    super();
    this.name = inner.name;
    void this.pump();
  }

  /** Hands every incoming message of the inner channel to this one. */
  private async pump(): Promise<void> {
    for (;;) {
      let m: Uint8Array;
      try {
        m = await this.inner.recv();
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      this.deliver(m);
    }
  }

  protected write(data: Uint8Array): void {
    const t = now(), start = Math.max(t, this.busyUntil);
    this.busyUntil = start + ((data.byteLength + 4) * 8 * 1e3) / this.link.bandwidth;
    this.queue.push({ data, at: this.busyUntil + this.link.rttMs / 2 });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.polling || !this.queue.length) return;
    const wait = this.queue[0]!.at - now();
    if (wait > 1.5) this.timer = setTimeout(() => { this.timer = null; this.schedule(); }, wait - 1);
    else { this.polling = true; soon(() => { this.polling = false; this.release(); }); }
  }

  /** Sends what is due, then waits for the next. */
  private release(): void {
    const t = now();
    while (this.queue.length && this.queue[0]!.at <= t) {
      const { data } = this.queue.shift()!;
      try {
        this.inner.send(data);
      } catch (e) {
        this.queue.length = 0;
        this.fail(e as Error);
      }
    }
    if (this.queue.length) this.schedule();
    else this.whenDrained();
  }

  private whenDrained(): void {
    const ds = this.drained;
    this.drained = [];
    for (const d of ds) d();
    if (this.closing) this.inner.close();
  }

  async flush(): Promise<void> {
    if (this.queue.length) await new Promise<void>((res) => this.drained.push(res));
    await this.inner.flush();
  }

  /** Closes the inner channel once the queued messages have arrived. */
  protected shutdown(): void {
    this.closing = true;
    if (!this.queue.length) this.inner.close();
  }
}

/** `ch` with its sends shaped by `link` (null: `ch` itself). */
export function shapeChannel(ch: Channel, link: LinkProfile | null): Channel {
  return link ? new ShapedChannel(ch, link) : ch;
}
