// Message channels for the parties, independent of the medium (no Node-only API: the browser client uses it too):
// the Channel interface, its shared base (framing-independent queueing and counters) and an in-process pair.
// Every message is counted; `rounds` counts flights (a new flight starts whenever the direction of this
// endpoint's traffic changes, the first message included), so send,send,recv,send gives rounds = 3.
// Received messages are counted when recv() hands them out, i.e. in protocol order.

export interface ChannelStats {
  bytesSent: number;
  bytesRecv: number;
  msgsSent: number;
  msgsRecv: number;
  rounds: number;
}

export const zeroStats = (): ChannelStats => ({ bytesSent: 0, bytesRecv: 0, msgsSent: 0, msgsRecv: 0, rounds: 0 });

/** after - before, for per-layer / per-phase accounting from two snapshots. */
export function diffStats(after: ChannelStats, before: ChannelStats): ChannelStats {
  return {
    bytesSent: after.bytesSent - before.bytesSent,
    bytesRecv: after.bytesRecv - before.bytesRecv,
    msgsSent: after.msgsSent - before.msgsSent,
    msgsRecv: after.msgsRecv - before.msgsRecv,
    rounds: after.rounds - before.rounds,
  };
}

/** Default cap on one frame's payload; a length prefix above the cap is rejected as malformed. */
export const DEFAULT_MAX_FRAME_BYTES = 1 << 30;

export interface ChannelOptions {
  /** Largest accepted payload, both directions (default 1 GiB). */
  maxFrameBytes?: number;
  /** Name used in error messages (default: the peer address, or 'pair:A' / 'pair:B'). */
  name?: string;
}

/**
 * A reliable, ordered, message-oriented duplex channel.
 * send() takes ownership of `data`: do not modify it afterwards (TCP may write it out later).
 */
export interface Channel {
  readonly name: string;
  readonly closed: boolean;
  send(data: Uint8Array): void;
  /** Next message; rejects with a descriptive Error if the peer disconnected or sent a malformed frame. */
  recv(): Promise<Uint8Array>;
  /** Resolves when queued outgoing bytes have been handed to the OS. */
  flush(): Promise<void>;
  close(): void;

  /** Counters since creation or the last resetStats(). */
  stats(): ChannelStats;
  /** Returns the counters so far and zeroes them (e.g. at a phase boundary). */
  resetStats(): ChannelStats;

  /** recv() that checks the length; `what` names the message in errors. */
  recvBytes(what: string, expectedLength?: number): Promise<Uint8Array>;
  sendU32Array(a: Uint32Array): void;
  recvU32Array(what: string, expectedLength?: number): Promise<Uint32Array>;
  sendJson(value: unknown): void;
  recvJson<T = unknown>(what: string): Promise<T>;
  /** Several arrays in one frame (one message per layer, not per array). */
  sendParts(parts: readonly Uint8Array[]): void;
  /** Parts of a sendParts() frame, as views aligned to 8 bytes (safe for typed-array views). */
  recvParts(what: string, expectedCount?: number): Promise<Uint8Array[]>;
}

type Waiter = { resolve: (m: Uint8Array) => void; reject: (e: Error) => void };

export abstract class ChannelBase implements Channel {
  abstract readonly name: string;
  protected readonly maxFrameBytes: number;
  private counters = zeroStats();
  private lastDir = 0; // 0 none, 1 send, 2 recv
  private inbox: Uint8Array[] = [];
  private waiters: Waiter[] = [];
  private failure: Error | null = null;
  private closedFlag = false;

  constructor(opts: ChannelOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  protected abstract write(data: Uint8Array): void;
  protected abstract shutdown(): void;
  abstract flush(): Promise<void>;

  send(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new Error(`${this.name}: send() takes a Uint8Array`);
    if (this.closedFlag) throw new Error(`${this.name}: cannot send ${data.byteLength} bytes: channel is closed`);
    if (this.failure) throw new Error(`${this.name}: cannot send ${data.byteLength} bytes: ${this.failure.message}`);
    if (data.byteLength > this.maxFrameBytes) {
      throw new Error(`${this.name}: message of ${data.byteLength} bytes exceeds maxFrameBytes ${this.maxFrameBytes}`);
    }
    if (this.lastDir !== 1) { this.counters.rounds++; this.lastDir = 1; }
    this.counters.msgsSent++;
    this.counters.bytesSent += data.byteLength;
    this.write(data);
  }

  recv(): Promise<Uint8Array> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(this.consumed(m));
    if (this.failure) return Promise.reject(new Error(this.failure.message));
    if (this.closedFlag) return Promise.reject(new Error(`${this.name}: recv() on a closed channel`));
    return new Promise<Uint8Array>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.fail(new Error(`${this.name}: channel closed locally`));
    this.shutdown();
  }

  stats(): ChannelStats {
    return { ...this.counters };
  }

  resetStats(): ChannelStats {
    const s = this.counters;
    this.counters = zeroStats();
    this.lastDir = 0;
    return s;
  }

  private consumed(m: Uint8Array): Uint8Array {
    if (this.lastDir !== 2) { this.counters.rounds++; this.lastDir = 2; }
    this.counters.msgsRecv++;
    this.counters.bytesRecv += m.byteLength;
    return m;
  }

  /** Called by subclasses with each complete incoming frame. */
  protected deliver(m: Uint8Array): void {
    if (this.failure) return;
    const w = this.waiters.shift();
    if (w) w.resolve(this.consumed(m));
    else this.inbox.push(m);
  }

  /** Called by subclasses on disconnect / malformed input: pending and later recv() reject with `err`. */
  protected fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(new Error(err.message));
  }

  async recvBytes(what: string, expectedLength?: number): Promise<Uint8Array> {
    let m: Uint8Array;
    try {
      m = await this.recv();
    } catch (e) {
      throw new Error(`${(e as Error).message} (while waiting for ${what})`);
    }
    if (expectedLength !== undefined && m.byteLength !== expectedLength) {
      throw new Error(`${this.name}: ${what}: expected ${expectedLength} bytes, got ${m.byteLength}`);
    }
    return m;
  }

  sendU32Array(a: Uint32Array): void {
    this.send(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }

  async recvU32Array(what: string, expectedLength?: number): Promise<Uint32Array> {
    const m = await this.recvBytes(what, expectedLength === undefined ? undefined : 4 * expectedLength);
    if (m.byteLength % 4 !== 0) throw new Error(`${this.name}: ${what}: ${m.byteLength} bytes is not a whole number of uint32`);
    const a = alignedCopy(m, 4);
    return new Uint32Array(a.buffer, a.byteOffset, a.byteLength >>> 2);
  }

  sendJson(value: unknown): void {
    this.send(new TextEncoder().encode(JSON.stringify(value)));
  }

  async recvJson<T = unknown>(what: string): Promise<T> {
    const m = await this.recvBytes(what);
    try {
      return JSON.parse(new TextDecoder().decode(m)) as T;
    } catch (e) {
      throw new Error(`${this.name}: ${what}: malformed JSON message of ${m.byteLength} bytes (${(e as Error).message})`);
    }
  }

  sendParts(parts: readonly Uint8Array[]): void {
    this.send(packParts(parts));
  }

  async recvParts(what: string, expectedCount?: number): Promise<Uint8Array[]> {
    const m = await this.recvBytes(what);
    const parts = unpackParts(m, `${this.name}: ${what}`);
    if (expectedCount !== undefined && parts.length !== expectedCount) {
      throw new Error(`${this.name}: ${what}: expected ${expectedCount} parts, got ${parts.length}`);
    }
    return parts;
  }
}

function alignedCopy(m: Uint8Array, align: number): Uint8Array {
  return (m.byteOffset % align) === 0 ? m : m.slice();
}

const pad8 = (n: number) => (n + 7) & ~7;

/** [count u32][len u32 x count][pad to 8][part0][pad to 8][part1]... so every part can be viewed as a typed array. */
export function packParts(parts: readonly Uint8Array[]): Uint8Array {
  let off = pad8(4 + 4 * parts.length);
  for (const p of parts) off = pad8(off + p.byteLength);
  const out = new Uint8Array(off);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, parts.length, true);
  off = pad8(4 + 4 * parts.length);
  parts.forEach((p, i) => {
    dv.setUint32(4 + 4 * i, p.byteLength, true);
    out.set(p, off);
    off = pad8(off + p.byteLength);
  });
  return out;
}

export function unpackParts(m: Uint8Array, what: string): Uint8Array[] {
  const buf = alignedCopy(m, 8);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.byteLength < 4) throw new Error(`${what}: multi-part message of ${buf.byteLength} bytes has no header`);
  const count = dv.getUint32(0, true);
  let off = pad8(4 + 4 * count);
  if (off > buf.byteLength) throw new Error(`${what}: multi-part header claims ${count} parts but message has ${buf.byteLength} bytes`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const len = dv.getUint32(4 + 4 * i, true);
    if (off + len > buf.byteLength) {
      throw new Error(`${what}: part ${i} of ${count} (${len} bytes at offset ${off}) runs past the ${buf.byteLength}-byte message`);
    }
    out.push(buf.subarray(off, off + len));
    off = pad8(off + len);
  }
  return out;
}

// ---------------------------------------------------------------- in-process pair

class PairChannel extends ChannelBase {
  peer: PairChannel | null = null;
  constructor(readonly name: string, opts: ChannelOptions) {
    super(opts);
  }
  protected write(data: Uint8Array): void {
    // Copy so that the receiver never sees later changes to the sender's buffer (as with TCP).
    this.peer?.deliver(data.slice());
  }
  protected shutdown(): void {
    const p = this.peer;
    this.peer = null;
    if (p) {
      p.peer = null;
      p.fail(new Error(`${p.name}: peer closed the connection`));
    }
  }
  async flush(): Promise<void> {}
}

/** Two connected in-process endpoints (for tests and single-process benchmarks). */
export function channelPair(opts: ChannelOptions = {}): [Channel, Channel] {
  const a = new PairChannel(`${opts.name ?? 'pair'}:A`, opts);
  const b = new PairChannel(`${opts.name ?? 'pair'}:B`, opts);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
