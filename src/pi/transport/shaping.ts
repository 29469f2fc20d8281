// Link profiles: a Channel decorator that makes what one party receives behave as over a link of given bandwidth and
// round-trip time. Each party shapes its own receives (so a pair of shaped endpoints shapes both directions): a frame
// that arrives occupies the link for (bytes + 4-byte frame header) * 8 / bandwidth after the link is free
// (busy-until), then is handed over RTT/2 later, in order. Works over any Channel (in-process pair, TCP, TLS).
//
// Why the receiver: the bytes cross the real transport at once, so the sender's flush() and its memory are those of
// the real channel, and the receiver knows when a frame is on the simulated link. Its idle timeout runs here, only
// while the protocol waits, and counts a frame on the link as activity: a slow link never looks like a silent peer,
// and a silent peer still times out (the inner channel's idle timeout is off: this decorator reads it all the time).
// Deadlines abort this channel and the inner one. Frame and buffer limits are passed to the inner channel, which
// parses the frames, and bytes on the simulated link count against the buffer limit here.
// A frame's link time starts when this party's event loop reads it: while a party computes, frames wait in the
// socket, so at most one link time per frame is not overlapped with the receiver's compute (an overestimate).
// Node's timers have 1 ms granularity, so the last millisecond of a wait polls with setImmediate.
// Profiles of Cheetah's scripts: LAN = 3 Gbit/s, 0.3 ms RTT; WAN = 400 Mbit/s, 40 ms RTT.
import { ChannelBase, type Channel, type ChannelLimits } from './channel.js';

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

const RATE: Record<string, number> = {
  bit: 1,
  kbit: 1e3,
  mbit: 1e6,
  gbit: 1e9,
  bps: 1,
  kbps: 1e3,
  mbps: 1e6,
  gbps: 1e9,
};
const TIME: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3 };

/** 'lan' | 'wan' | 'none' (null: no shaping) | 'BANDWIDTH,RTT' with units, e.g. '3gbit,0.3ms', '400mbit,40ms'. */
export function parseLink(spec: string): LinkProfile | null {
  const s = spec.trim().toLowerCase();
  if (s === 'none') return null;
  const named = LINK_PROFILES[s];
  if (named) return named;
  const m = /^([\d.]+)\s*([a-z]+)\s*,\s*([\d.]+)\s*([a-z]+)$/.exec(s);
  const rate = m && RATE[m[2]!],
    time = m && TIME[m[4]!];
  const bandwidth = m && rate ? Number(m[1]) * rate : NaN,
    rttMs = m && time ? Number(m[3]) * time : NaN;
  if (!(bandwidth > 0) || !(rttMs >= 0)) {
    throw new Error(
      `link '${spec}': expected lan, wan, none or BANDWIDTH,RTT such as 3gbit,0.3ms (bandwidth units: ${Object.keys(RATE).join(', ')}; time: ${Object.keys(TIME).join(', ')})`,
    );
  }
  return { name: `${m![1]}${m![2]},${m![3]}${m![4]}`, bandwidth, rttMs };
}

/** A list of profiles, e.g. 'lan,wan,none' or 'lan,3gbit,0.3ms' (a custom profile's two parts stay together). */
export function parseLinks(spec: string): (LinkProfile | null)[] {
  const t = spec.split(',').map((x) => x.trim()),
    out: (LinkProfile | null)[] = [];
  for (let i = 0; i < t.length; i++) {
    if (/^[\d.]/.test(t[i]!) && i + 1 < t.length) {
      out.push(parseLink(`${t[i]},${t[i + 1]}`));
      i++;
    } else out.push(parseLink(t[i]!));
  }
  return out;
}

/** A readable form for reports: '3 Gbit/s, 0.3 ms RTT'. */
export function describeLink(l: LinkProfile | null): string {
  if (!l) return 'no shaping';
  const b =
    l.bandwidth >= 1e9
      ? `${l.bandwidth / 1e9} Gbit/s`
      : l.bandwidth >= 1e6
        ? `${l.bandwidth / 1e6} Mbit/s`
        : `${l.bandwidth / 1e3} kbit/s`;
  return `${l.name}: ${b}, ${l.rttMs} ms RTT`;
}

const now = () => performance.now();
/** Next turn of the event loop (setImmediate where it exists: Node; a 0 ms timeout in a browser). */
const soon: (f: () => void) => void =
  typeof setImmediate === 'function'
    ? (f) => {
        setImmediate(f);
      }
    : (f) => {
        setTimeout(f, 0);
      };

class ShapedChannel extends ChannelBase {
  readonly name: string;
  private busyUntil = 0;
  private readonly queue: { data: Uint8Array; at: number }[] = [];
  private queued = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private polling = false;
  /** The inner channel's failure (e.g. the peer closed), handed over after the frames still on the link. */
  private ended: Error | null = null;
  private stopped = false;

  constructor(
    private readonly inner: Channel,
    private readonly link: LinkProfile,
  ) {
    super({ limits: { ...inner.limits } });
    this.name = inner.name;
    // This decorator always waits on the inner channel: the idle timeout runs here, only while the protocol waits.
    inner.setLimits({ idleMs: 0 });
    void this.pump();
  }

  override setLimits(l: Partial<ChannelLimits>): void {
    super.setLimits(l);
    const { idleMs: _idle, ...rest } = l;
    this.inner.setLimits(rest);
  }

  override abort(err: Error): void {
    super.abort(err);
    this.inner.abort(err);
  }

  /** Puts every incoming frame of the inner channel on the simulated link. */
  private async pump(): Promise<void> {
    for (;;) {
      let m: Uint8Array;
      try {
        m = await this.inner.recv();
      } catch (e) {
        if (this.stopped) return; // this channel failed first (closed, aborted, refused input)
        this.ended = e as Error;
        if (!this.queue.length) this.finish();
        return;
      }
      if (this.stopped) return;
      const start = Math.max(now(), this.busyUntil);
      this.busyUntil = start + ((m.byteLength + 4) * 8 * 1e3) / this.link.bandwidth;
      this.queue.push({ data: m, at: this.busyUntil + this.link.rttMs / 2 });
      this.queued += m.byteLength;
      this.checkBuffered();
      this.schedule();
    }
  }

  private schedule(): void {
    if (this.timer || this.polling || !this.queue.length || this.stopped) return;
    const wait = this.queue[0]!.at - now();
    if (wait > 1.5)
      this.timer = setTimeout(() => {
        this.timer = null;
        this.schedule();
      }, wait - 1);
    else {
      this.polling = true;
      soon(() => {
        this.polling = false;
        this.release();
      });
    }
  }

  /** Hands over what is due, then waits for the next. */
  private release(): void {
    const t = now();
    while (this.queue.length && this.queue[0]!.at <= t && !this.stopped) {
      const { data } = this.queue.shift()!;
      this.queued -= data.byteLength;
      this.deliver(data);
    }
    if (this.queue.length) this.schedule();
    else if (this.ended) this.finish();
  }

  /** The inner channel's failure, after the frames that were on the link (a send on a dead inner channel still fails there). */
  private finish(): void {
    this.fail(this.ended!);
  }

  protected override heldElsewhere(): number {
    return this.queued + this.inner.memory().bufferedIn;
  }

  protected override inFlight(): boolean {
    return this.queue.length > 0;
  }

  protected override onFatalInput(): void {
    this.stop();
    this.inner.abort(new Error(`${this.name}: input refused`));
  }

  protected override fail(err: Error): void {
    super.fail(err);
    this.stop();
  }

  private stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.queued = 0;
  }

  protected write(data: Uint8Array): void {
    this.inner.send(data);
  }

  protected drained(): Promise<void> {
    return this.inner.flush();
  }

  protected outstanding(): number {
    return this.inner.memory().bufferedOut;
  }

  protected shutdown(): void {
    this.inner.close();
  }
}

/** `ch` with its receives shaped by `link` (null: `ch` itself). */
export function shapeChannel(ch: Channel, link: LinkProfile | null): Channel {
  return link ? new ShapedChannel(ch, link) : ch;
}
