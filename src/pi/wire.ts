// Protocol-level message checks and error frames. A party that fails sends one error frame
// ({"pi_error": message}) before closing, so the peer reports the cause instead of a bare disconnect.
import { unpackParts, type Channel, type ChannelStats } from './transport/channel.js';

const PREFIX = new TextEncoder().encode('{"pi_error":');

function errorFrame(m: Uint8Array): string | null {
  if (m.byteLength < PREFIX.length || m.byteLength > 65536) return null;
  for (let i = 0; i < PREFIX.length; i++) if (m[i] !== PREFIX[i]) return null;
  try {
    const j = JSON.parse(new TextDecoder().decode(m)) as { pi_error?: unknown };
    return typeof j.pi_error === 'string' ? j.pi_error : null;
  } catch {
    return null;
  }
}

/** The next message, checked for an error frame from the peer and (if given) its length. */
export async function recvChecked(ch: Channel, what: string, expectedLength?: number): Promise<Uint8Array> {
  const m = await ch.recvBytes(what);
  const err = errorFrame(m);
  if (err !== null) throw new PeerError(`${ch.name}: peer reported an error while we waited for ${what}: ${err}`, ch);
  if (expectedLength !== undefined && m.byteLength !== expectedLength) {
    throw new Error(`${ch.name}: malformed message: ${what}: expected ${expectedLength} bytes, got ${m.byteLength}`);
  }
  return m;
}

export async function recvJsonChecked<T>(ch: Channel, what: string): Promise<T> {
  const m = await recvChecked(ch, what);
  try {
    return JSON.parse(new TextDecoder().decode(m)) as T;
  } catch (e) {
    throw new Error(`${ch.name}: malformed message: ${what}: not JSON (${m.byteLength} bytes: ${(e as Error).message})`);
  }
}

/** An error the peer on `from` reported (not re-sent to it). */
export class PeerError extends Error {
  constructor(message: string, readonly from: Channel) {
    super(message);
  }
}

/**
 * A view of `ch` whose every receive (including those inside OT and the preprocessor) turns a peer's error frame
 * into a PeerError naming what was awaited.
 */
class CheckedChannel implements Channel {
  constructor(private readonly ch: Channel) {}
  get name(): string { return this.ch.name; }
  get closed(): boolean { return this.ch.closed; }
  send(d: Uint8Array): void { this.ch.send(d); }
  recv(): Promise<Uint8Array> { return recvChecked(this.ch, 'the next message'); }
  flush(): Promise<void> { return this.ch.flush(); }
  close(): void { this.ch.close(); }
  stats(): ChannelStats { return this.ch.stats(); }
  resetStats(): ChannelStats { return this.ch.resetStats(); }
  recvBytes(what: string, expectedLength?: number): Promise<Uint8Array> { return recvChecked(this.ch, what, expectedLength); }
  sendU32Array(a: Uint32Array): void { this.ch.sendU32Array(a); }
  async recvU32Array(what: string, expectedLength?: number): Promise<Uint32Array> {
    const m = await recvChecked(this.ch, what, expectedLength === undefined ? undefined : 4 * expectedLength);
    if (m.byteLength % 4) throw new Error(`${this.name}: malformed message: ${what}: ${m.byteLength} bytes is not a whole number of uint32`);
    const a = (m.byteOffset & 3) === 0 ? m : m.slice();
    return new Uint32Array(a.buffer, a.byteOffset, a.byteLength >>> 2);
  }
  sendJson(v: unknown): void { this.ch.sendJson(v); }
  recvJson<T = unknown>(what: string): Promise<T> { return recvJsonChecked<T>(this.ch, what); }
  sendParts(parts: readonly Uint8Array[]): void { this.ch.sendParts(parts); }
  async recvParts(what: string, expectedCount?: number): Promise<Uint8Array[]> {
    const parts = unpackParts(await recvChecked(this.ch, what), `${this.name}: malformed message: ${what}`);
    if (expectedCount !== undefined && parts.length !== expectedCount) throw new Error(`${this.name}: malformed message: ${what}: expected ${expectedCount} parts, got ${parts.length}`);
    return parts;
  }
}

/**
 * A peer's error frame already received but not read (e.g. a send failed because the peer had reported an error
 * and closed): the peer's cause is the one to report.
 */
async function queuedPeerError(chs: Channel[], local: Error): Promise<PeerError | null> {
  for (const c of chs) {
    const next = c.recv();
    next.catch(() => {});
    const m = await Promise.race([next, Promise.resolve(null)]).catch(() => null);
    const err = m && errorFrame(m);
    if (err !== null && err !== undefined) return new PeerError(`${c.name}: peer reported an error: ${err} (here: ${local.message})`, c);
  }
  return null;
}

/**
 * Runs `fn` on an error-frame-aware view of `ch`. `fn` may `adopt` further channels of the same session (e.g. to a
 * dealer): it gets their checked views, and they are closed when `fn` ends. On failure every channel's peer is told
 * (except the one that reported the error, or that disconnected), all are closed, and the error is rethrown.
 */
export async function guarded<T>(ch: Channel, role: string, fn: (ch: Channel, adopt: (other: Channel) => Channel) => Promise<T>): Promise<T> {
  const extra: Channel[] = [];
  const adopt = (other: Channel): Channel => {
    extra.push(other);
    return new CheckedChannel(other);
  };
  try {
    return await fn(new CheckedChannel(ch), adopt);
  } catch (e) {
    const err = (e instanceof PeerError ? e : await queuedPeerError([ch, ...extra], e as Error)) ?? (e as Error);
    for (const c of [ch, ...extra]) {
      if (c.closed || (err instanceof PeerError && err.from === c)) continue;
      try {
        c.sendJson({ pi_error: `${role}: ${err.message}` });
        await c.flush();
      } catch {
        // the peer is gone already
      }
    }
    ch.close();
    throw err;
  } finally {
    for (const c of extra) c.close();
  }
}
