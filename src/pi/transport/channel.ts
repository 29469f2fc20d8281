// Message channels for the parties, independent of the medium (no Node-only API: the browser client uses it too):
// the Channel interface, its shared base (queueing, counters, receive limits, idle timeout), the frame reader every
// byte-stream medium shares (TCP, TLS, and later a WebSocket carrying the same byte stream), and an in-process pair.
// Every message is counted; `rounds` counts flights (a new flight starts whenever the direction of this
// endpoint's traffic changes, the first message included), so send,send,recv,send gives rounds = 3.
// Received messages are counted when recv() hands them out, i.e. in protocol order.

import { malformed, PiError } from './errors.js';

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

/** Limits a channel enforces on what it receives; the protocol tightens them per state (setLimits). */
export interface ChannelLimits {
  /** Largest payload of one incoming frame; a larger length prefix fails the channel (LIMIT). */
  maxFrameBytes: number;
  /** Most bytes received but not yet read (queued frames plus the partial frame's buffer); more fails it (LIMIT). */
  maxBufferedBytes: number;
  /** A recv() that waits this long without any byte arriving fails (TIMEOUT); 0: no idle timeout. */
  idleMs: number;
  /**
   * Most bytes written and not yet handed to the medium (a peer that does not read): a send() past it fails the
   * channel (LIMIT), and a recv() while more than half of it is unsent first waits for it to drain (at most idleMs, then
   * TIMEOUT), so a sender that answers each request never runs ahead of a peer that does not read. Infinity: no bound.
   */
  maxBufferedOut: number;
  /** The protocol state the limits belong to, named in errors (e.g. 'before the hello'; '' for none). */
  state: string;
}

/** Defaults of a bare channel (the protocols set tighter ones): 1 GiB frames, no idle timeout, no outgoing bound. */
export const DEFAULT_LIMITS: ChannelLimits = {
  maxFrameBytes: 1 << 30,
  maxBufferedBytes: 2 ** 31,
  idleMs: 0,
  maxBufferedOut: Infinity,
  state: '',
};

/** Bytes a channel holds now and at its peak: received but unread (in), and written but not yet sent (out). */
export interface ChannelMemory {
  bufferedIn: number;
  peakIn: number;
  bufferedOut: number;
  peakOut: number;
}

export interface ChannelOptions {
  /** Largest accepted payload, both directions (shorthand for limits.maxFrameBytes). */
  maxFrameBytes?: number;
  limits?: Partial<ChannelLimits>;
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
  /** Resolves when queued outgoing bytes have been handed to the OS; rejects once the channel failed. */
  flush(): Promise<void>;
  close(): void;
  /** Fails pending and later recv() and flush() with `err` (e.g. a deadline); sending stays possible until close(). */
  abort(err: Error): void;

  /** Tightens or loosens the receive limits from now on (they apply to frames whose length prefix comes later). */
  setLimits(l: Partial<ChannelLimits>): void;
  readonly limits: Readonly<ChannelLimits>;
  memory(): ChannelMemory;

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

const HEADER = 4;
/** A piece of a chunk smaller than this share of its buffer is copied, not retained (a small view pins its buffer). */
const RETAIN_SHARE = 4;

/**
 * Splits a byte stream into length-prefixed frames (4-byte big-endian length, then the payload). The payload's pieces
 * are held as they arrive and joined into one buffer of the announced length when the last byte is in: nothing is
 * ever allocated from the prefix alone, so a peer that announces 1 GiB and sends nothing costs nothing, and a frame
 * costs one allocation of its size (not a buffer doubling as it fills). A piece is retained only when it is most of
 * its chunk's buffer; a small view into a larger buffer is copied, so what is held stays within a few times what
 * arrived. `held` counts the buffers retained.
 */
export class FrameReader {
  private hdr = new Uint8Array(HEADER);
  private hdrFill = 0;
  private len = -1;
  private parts: Uint8Array[] = [];
  private partsHeld = 0;
  private owned = false;
  private fill = 0;
  private stopped = false;

  constructor(
    /** The largest acceptable length, read when each prefix completes. */
    private readonly limit: () => number,
    private readonly onFrame: (m: Uint8Array) => void,
    private readonly onTooLarge: (len: number, limit: number) => void,
  ) {}

  /** Bytes held for the frame in progress (the buffers of its pieces plus a partial prefix). */
  get held(): number {
    return this.partsHeld + this.hdrFill;
  }

  push(chunk: Uint8Array): void {
    let p = 0;
    while (p < chunk.length && !this.stopped) {
      if (this.len < 0) {
        const n = Math.min(HEADER - this.hdrFill, chunk.length - p);
        this.hdr.set(chunk.subarray(p, p + n), this.hdrFill);
        this.hdrFill += n;
        p += n;
        if (this.hdrFill < HEADER) return;
        this.hdrFill = 0;
        const len = ((this.hdr[0]! << 24) | (this.hdr[1]! << 16) | (this.hdr[2]! << 8) | this.hdr[3]!) >>> 0;
        const lim = this.limit();
        if (len > lim) {
          this.stopped = true;
          this.onTooLarge(len, lim);
          return;
        }
        if (len === 0) {
          this.onFrame(new Uint8Array(0));
          continue;
        }
        this.len = len;
        this.fill = 0;
        continue;
      }
      const n = Math.min(this.len - this.fill, chunk.length - p);
      let piece = chunk.subarray(p, p + n);
      const copy = piece.buffer.byteLength > RETAIN_SHARE * n;
      if (copy) piece = new Uint8Array(piece); // a plain copy (a Buffer's slice() would be a view)
      this.parts.push(piece);
      this.partsHeld += piece.buffer.byteLength;
      if (this.parts.length === 1) this.owned = copy;
      this.fill += n;
      p += n;
      if (this.fill === this.len) {
        const only = this.parts.length === 1 && this.owned ? this.parts[0]! : null;
        let m: Uint8Array;
        if (only) m = only;
        else {
          m = new Uint8Array(this.len);
          let o = 0;
          for (const x of this.parts) {
            m.set(x, o);
            o += x.length;
          }
        }
        this.parts = [];
        this.partsHeld = 0;
        this.len = -1;
        this.onFrame(m);
      }
    }
  }

  /** Why the stream may not end here (a frame cut short), or null. */
  truncation(): string | null {
    if (this.len >= 0) return `truncated frame: connection closed after ${this.fill} of ${this.len} payload bytes`;
    if (this.hdrFill > 0)
      return `truncated frame: connection closed after ${this.hdrFill} of ${HEADER} length-prefix bytes`;
    return null;
  }

  /** Stops parsing (after a fatal error) and drops what is held. */
  stop(): void {
    this.stopped = true;
    this.parts = [];
    this.partsHeld = 0;
  }
}

/** The 4-byte big-endian length prefix of a frame. */
export function framePrefix(len: number): Uint8Array {
  return new Uint8Array([len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255]);
}

export abstract class ChannelBase implements Channel {
  abstract readonly name: string;
  private lim: ChannelLimits;
  private counters = zeroStats();
  private lastDir = 0; // 0 none, 1 send, 2 recv
  private inbox: Uint8Array[] = [];
  private inboxBytes = 0;
  private waiters: Waiter[] = [];
  private failure: Error | null = null;
  /** The transport is gone (peer closed, socket error): sends fail too. */
  private dead = false;
  private closedFlag = false;
  private peakIn = 0;
  private peakOut = 0;
  private lastActivity = 0;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private failureWaiters: ((e: Error) => void)[] = [];
  /** Frame parsing for stream media (TCP, TLS, a WebSocket's byte stream): feed it with receiveBytes(). */
  protected readonly reader: FrameReader;

  constructor(opts: ChannelOptions = {}) {
    this.lim = {
      ...DEFAULT_LIMITS,
      ...opts.limits,
      ...(opts.maxFrameBytes !== undefined ? { maxFrameBytes: opts.maxFrameBytes } : {}),
    };
    this.reader = new FrameReader(
      () => this.lim.maxFrameBytes,
      (m) => this.deliver(m),
      (len, lim) => {
        this.fail(
          new PiError('LIMIT', `${this.name}: frame of ${len} bytes exceeds the limit of ${lim} bytes${this.where()}`),
        );
        this.onFatalInput();
      },
    );
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  get limits(): Readonly<ChannelLimits> {
    return this.lim;
  }

  setLimits(l: Partial<ChannelLimits>): void {
    this.lim = { ...this.lim, ...l };
  }

  protected abstract write(data: Uint8Array): void;
  protected abstract shutdown(): void;
  /** Resolves when written bytes have been handed to the medium. */
  protected abstract drained(): Promise<void>;
  /** Bytes written but not yet handed to the medium. */
  protected abstract outstanding(): number;
  /** Stop taking input after a fatal receive error (too large a frame or too much buffered). */
  protected onFatalInput(): void {}
  /** Bytes received and held outside the inbox and the frame reader (a decorator's own queue), for the limits. */
  protected heldElsewhere(): number {
    return 0;
  }
  /** Whether bytes from the peer are on their way now (a decorator's simulated link): a wait is then not idle. */
  protected inFlight(): boolean {
    return false;
  }

  send(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new Error(`${this.name}: send() takes a Uint8Array`);
    if (this.closedFlag) throw new Error(`${this.name}: cannot send ${data.byteLength} bytes: channel is closed`);
    if (this.dead) {
      const f = this.failure!,
        msg = `${this.name}: cannot send ${data.byteLength} bytes: ${f.message}`;
      throw f instanceof PiError ? new PiError(f.code, msg, { cause: f }) : new Error(msg, { cause: f });
    }
    if (data.byteLength > 0xffffffff)
      throw new Error(`${this.name}: message of ${data.byteLength} bytes does not fit a frame`);
    const unsent = this.outstanding();
    if (unsent + 4 + data.byteLength > this.lim.maxBufferedOut) {
      const e = new PiError(
        'LIMIT',
        `${this.name}: ${unsent} bytes not yet taken by the peer and a message of ${data.byteLength} bytes exceed the outgoing limit of ${this.lim.maxBufferedOut} bytes${this.where()}`,
      );
      this.fail(e);
      throw e;
    }
    if (this.lastDir !== 1) {
      this.counters.rounds++;
      this.lastDir = 1;
    }
    this.counters.msgsSent++;
    this.counters.bytesSent += data.byteLength;
    this.write(data);
    const out = this.outstanding();
    if (out > this.peakOut) this.peakOut = out;
  }

  recv(): Promise<Uint8Array> {
    const bound = this.lim.maxBufferedOut;
    if (bound !== Infinity && !this.failure && this.outstanding() > bound / 2) return this.drainThenRecv();
    return this.recvNow();
  }

  /** Waits until what was sent has drained (at most idleMs), then receives. */
  private async drainThenRecv(): Promise<Uint8Array> {
    const idle = this.lim.idleMs;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const stuck = new Promise<never>((_, reject) => {
      if (!idle) return;
      timer = setTimeout(() => {
        const e = new PiError(
          'TIMEOUT',
          `${this.name}: the peer read nothing for ${(idle / 1e3).toFixed(1)} s with ${this.outstanding()} bytes unsent (idle timeout)${this.where()}`,
        );
        this.fail(e);
        reject(e);
      }, idle);
    });
    stuck.catch(() => {});
    try {
      await Promise.race([this.flush(), stuck]);
    } finally {
      if (timer) clearTimeout(timer);
    }
    return this.recvNow();
  }

  private recvNow(): Promise<Uint8Array> {
    const m = this.inbox.shift();
    if (m) {
      this.inboxBytes -= m.byteLength;
      return Promise.resolve(this.consumed(m));
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.closedFlag) return Promise.reject(new Error(`${this.name}: recv() on a closed channel`));
    return new Promise<Uint8Array>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.lastActivity = Date.now();
      this.armIdle();
    });
  }

  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      const onFail = (e: Error) => reject(e);
      this.failureWaiters.push(onFail);
      this.drained().then(() => {
        this.failureWaiters = this.failureWaiters.filter((f) => f !== onFail);
        if (this.failure) reject(this.failure);
        else resolve();
      }, reject);
    });
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.fail(new Error(`${this.name}: channel closed locally`));
    this.reader.stop();
    this.inbox = [];
    this.inboxBytes = 0;
    this.shutdown();
  }

  abort(err: Error): void {
    this.fail(err);
  }

  memory(): ChannelMemory {
    return {
      bufferedIn: this.inboxBytes + this.reader.held + this.heldElsewhere(),
      peakIn: this.peakIn,
      bufferedOut: this.outstanding(),
      peakOut: this.peakOut,
    };
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
    if (this.lastDir !== 2) {
      this.counters.rounds++;
      this.lastDir = 2;
    }
    this.counters.msgsRecv++;
    this.counters.bytesRecv += m.byteLength;
    return m;
  }

  private where(): string {
    return this.lim.state ? ` ${this.lim.state}` : '';
  }

  private armIdle(): void {
    if (this.idleTimer || !this.lim.idleMs) return;
    const check = () => {
      this.idleTimer = null;
      if (!this.waiters.length || this.failure) return;
      if (this.inFlight()) this.lastActivity = Date.now();
      const quiet = Date.now() - this.lastActivity;
      if (quiet >= this.lim.idleMs) {
        this.fail(
          new PiError(
            'TIMEOUT',
            `${this.name}: no data from the peer for ${(quiet / 1e3).toFixed(1)} s (idle timeout ${(this.lim.idleMs / 1e3).toFixed(1)} s)${this.where()}`,
          ),
        );
        return;
      }
      this.idleTimer = setTimeout(check, this.lim.idleMs - quiet);
    };
    this.idleTimer = setTimeout(check, this.lim.idleMs);
  }

  private disarmIdle(): void {
    if (this.idleTimer && !this.waiters.length) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
  }

  /** Subclasses of stream media call this with every chunk of bytes received. */
  protected receiveBytes(chunk: Uint8Array): void {
    if (this.failure) return;
    this.lastActivity = Date.now();
    this.reader.push(chunk);
    this.checkBuffered();
  }

  /** Fails the channel (LIMIT) when more than maxBufferedBytes are held unread; tracks the peak. */
  protected checkBuffered(): void {
    const held = this.inboxBytes + this.reader.held + this.heldElsewhere();
    if (held > this.peakIn) this.peakIn = held;
    if (held > this.lim.maxBufferedBytes && !this.failure) {
      this.fail(
        new PiError(
          'LIMIT',
          `${this.name}: ${held} bytes received and not read exceed the limit of ${this.lim.maxBufferedBytes} bytes${this.where()}`,
        ),
      );
      this.reader.stop();
      this.inbox = [];
      this.inboxBytes = 0;
      this.onFatalInput();
    }
  }

  /** Called with each complete incoming frame (message media call it directly; the limits apply here too). */
  protected deliver(m: Uint8Array): void {
    if (this.failure) return;
    this.lastActivity = Date.now();
    if (m.byteLength > this.lim.maxFrameBytes) {
      this.fail(
        new PiError(
          'LIMIT',
          `${this.name}: frame of ${m.byteLength} bytes exceeds the limit of ${this.lim.maxFrameBytes} bytes${this.where()}`,
        ),
      );
      this.onFatalInput();
      return;
    }
    const w = this.waiters.shift();
    if (w) {
      this.disarmIdle();
      w.resolve(this.consumed(m));
      return;
    }
    this.inbox.push(m);
    this.inboxBytes += m.byteLength;
    this.checkBuffered();
  }

  /**
   * Pending and later recv() (and flush()) reject with `err`. `transportGone`: the medium is closed, so sends fail
   * too; otherwise (a local abort, a malformed or too large frame) a last error frame can still be sent.
   */
  protected fail(err: Error, transportGone = false): void {
    if (transportGone) this.dead = true;
    if (this.failure) return;
    this.failure = err;
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(err);
    const fs = this.failureWaiters;
    this.failureWaiters = [];
    for (const f of fs) f(err);
  }

  async recvBytes(what: string, expectedLength?: number): Promise<Uint8Array> {
    let m: Uint8Array;
    try {
      m = await this.recv();
    } catch (e) {
      const err = e as Error;
      throw err instanceof PiError
        ? new PiError(err.code, `${err.message} (while waiting for ${what})`, { cause: err })
        : new Error(`${err.message} (while waiting for ${what})`, { cause: err });
    }
    if (expectedLength !== undefined && m.byteLength !== expectedLength) {
      throw malformed(`${this.name}: ${what}: expected ${expectedLength} bytes, got ${m.byteLength}`);
    }
    return m;
  }

  sendU32Array(a: Uint32Array): void {
    this.send(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }

  async recvU32Array(what: string, expectedLength?: number): Promise<Uint32Array> {
    const m = await this.recvBytes(what, expectedLength === undefined ? undefined : 4 * expectedLength);
    return u32View(m, `${this.name}: ${what}`);
  }

  sendJson(value: unknown): void {
    this.send(new TextEncoder().encode(JSON.stringify(value)));
  }

  async recvJson<T = unknown>(what: string): Promise<T> {
    return parseJson<T>(await this.recvBytes(what), `${this.name}: ${what}`);
  }

  sendParts(parts: readonly Uint8Array[]): void {
    this.send(packParts(parts));
  }

  async recvParts(what: string, expectedCount?: number): Promise<Uint8Array[]> {
    const parts = unpackParts(await this.recvBytes(what), `${this.name}: ${what}`);
    if (expectedCount !== undefined && parts.length !== expectedCount) {
      throw malformed(`${this.name}: ${what}: expected ${expectedCount} parts, got ${parts.length}`);
    }
    return parts;
  }
}

/** A message as uint32 words (MALFORMED if its length is not a multiple of 4). */
export function u32View(m: Uint8Array, what: string): Uint32Array {
  if (m.byteLength % 4 !== 0) throw malformed(`${what}: ${m.byteLength} bytes is not a whole number of uint32`);
  const a = alignedCopy(m, 4);
  return new Uint32Array(a.buffer, a.byteOffset, a.byteLength >>> 2);
}

/** A message as JSON (MALFORMED if it is not UTF-8 JSON). */
export function parseJson<T>(m: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(m)) as T;
  } catch (e) {
    throw malformed(`${what}: malformed JSON message of ${m.byteLength} bytes (${(e as Error).message})`);
  }
}

function alignedCopy(m: Uint8Array, align: number): Uint8Array {
  return m.byteOffset % align === 0 ? m : m.slice();
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
  if (buf.byteLength < 4) throw malformed(`${what}: multi-part message of ${buf.byteLength} bytes has no header`);
  const count = dv.getUint32(0, true);
  // Checked before anything is allocated for the parts: the header alone must fit the message.
  if (4 + 4 * count > buf.byteLength)
    throw malformed(`${what}: multi-part header claims ${count} parts but message has ${buf.byteLength} bytes`);
  let off = pad8(4 + 4 * count);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const len = dv.getUint32(4 + 4 * i, true);
    if (off + len > buf.byteLength) {
      throw malformed(
        `${what}: part ${i} of ${count} (${len} bytes at offset ${off}) runs past the ${buf.byteLength}-byte message`,
      );
    }
    out.push(buf.subarray(off, off + len));
    off = pad8(off + len);
  }
  return out;
}

// ---------------------------------------------------------------- in-process pair

class PairChannel extends ChannelBase {
  peer: PairChannel | null = null;
  constructor(
    readonly name: string,
    opts: ChannelOptions,
  ) {
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
      p.fail(new PiError('ABORTED', `${p.name}: peer closed the connection`), true);
    }
  }
  protected drained(): Promise<void> {
    return Promise.resolve();
  }
  protected outstanding(): number {
    return 0;
  }
}

/** Two connected in-process endpoints (for tests and single-process benchmarks). */
export function channelPair(opts: ChannelOptions = {}): [Channel, Channel] {
  const a = new PairChannel(`${opts.name ?? 'pair'}:A`, opts);
  const b = new PairChannel(`${opts.name ?? 'pair'}:B`, opts);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
