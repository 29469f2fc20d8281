// Protocol-level message checks and error frames. A party that fails sends one error frame before closing,
//   {"pi_error": {"code": "MALFORMED", "message": "malformed message", "from": "server"}}
// with a code from transport/errors.ts and that code's fixed generic text, so the peer reports the cause instead of
// a bare disconnect while nothing local (values, indices, sizes, digests, stack) crosses. The receiver shows its own
// text for the code, never the peer's words.
import {
  unpackParts,
  u32View,
  parseJson,
  type Channel,
  type ChannelLimits,
  type ChannelMemory,
  type ChannelStats,
} from './transport/channel.js';
import { codeOf, ERROR_CODES, isErrorCode, malformed, PiError, type ErrorCode } from './transport/errors.js';

export { ERROR_CODES, PiError, codeOf, malformed, type ErrorCode };

const PREFIX = new TextEncoder().encode('{"pi_error":');
/** Error frames are small: a longer message starting like one is data (or malformed). */
export const ERROR_FRAME_MAX = 256;

export type PartyRole = 'server' | 'client' | 'dealer';

/** The most a BUSY error frame may ask a client to wait before it tries again. */
export const MAX_RETRY_MS = 60_000;

/** The bytes of an error frame for `code` (BUSY may carry a retry hint in whole milliseconds). */
export function errorFrameBytes(code: ErrorCode, from: PartyRole, retryMs?: number): Uint8Array {
  const hint =
    code === 'BUSY' && retryMs !== undefined
      ? { retry_ms: Math.min(MAX_RETRY_MS, Math.max(0, Math.round(retryMs))) }
      : {};
  return new TextEncoder().encode(JSON.stringify({ pi_error: { code, message: ERROR_CODES[code], from, ...hint } }));
}

/** The error a frame reports (code and sender role), null for a data message; MALFORMED for a garbled error frame. */
export function parseErrorFrame(m: Uint8Array): { code: ErrorCode; from: string; retryMs?: number } | null {
  if (m.byteLength < PREFIX.length || m.byteLength > ERROR_FRAME_MAX) return null;
  for (let i = 0; i < PREFIX.length; i++) if (m[i] !== PREFIX[i]) return null;
  let j: { pi_error?: { code?: unknown; from?: unknown; retry_ms?: unknown } };
  try {
    j = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(m)) as typeof j;
  } catch {
    return { code: 'MALFORMED', from: 'peer' };
  }
  const e = j?.pi_error;
  const from = e?.from === 'server' || e?.from === 'client' || e?.from === 'dealer' ? e.from : 'peer';
  const code = isErrorCode(e?.code) ? e.code : 'MALFORMED',
    r = e?.retry_ms;
  const retry =
    code === 'BUSY' && typeof r === 'number' && Number.isFinite(r)
      ? { retryMs: Math.min(MAX_RETRY_MS, Math.max(0, r)) }
      : {};
  return { code, from, ...retry };
}

/** An error the peer on `from` reported (not re-sent to it). */
export class PeerError extends PiError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly from: Channel,
    retryMs?: number,
  ) {
    super(code, message, retryMs !== undefined ? { retryMs } : {});
    this.name = 'PeerError';
  }
}

function peerError(ch: Channel, e: { code: ErrorCode; from: string; retryMs?: number }, what: string): PeerError {
  return new PeerError(
    e.code,
    `${ch.name}: the ${e.from} reported ${e.code} (${ERROR_CODES[e.code]}) while we waited for ${what}`,
    ch,
    e.retryMs,
  );
}

/** The next message, checked for an error frame from the peer and (if given) its length. */
export async function recvChecked(ch: Channel, what: string, expectedLength?: number): Promise<Uint8Array> {
  const m = await ch.recvBytes(what);
  const err = parseErrorFrame(m);
  if (err !== null) throw peerError(ch, err, what);
  if (expectedLength !== undefined && m.byteLength !== expectedLength) {
    throw malformed(`${ch.name}: malformed message: ${what}: expected ${expectedLength} bytes, got ${m.byteLength}`);
  }
  return m;
}

export async function recvJsonChecked<T>(ch: Channel, what: string): Promise<T> {
  return parseJson<T>(await recvChecked(ch, what), `${ch.name}: malformed message: ${what}`);
}

/**
 * A view of `ch` whose every receive (including those inside OT and the preprocessor) turns a peer's error frame
 * into a PeerError naming what was awaited.
 */
class CheckedChannel implements Channel {
  constructor(private readonly ch: Channel) {}
  get name(): string {
    return this.ch.name;
  }
  get closed(): boolean {
    return this.ch.closed;
  }
  get limits(): Readonly<ChannelLimits> {
    return this.ch.limits;
  }
  send(d: Uint8Array): void {
    this.ch.send(d);
  }
  recv(): Promise<Uint8Array> {
    return recvChecked(this.ch, 'the next message');
  }
  flush(): Promise<void> {
    return this.ch.flush();
  }
  close(): void {
    this.ch.close();
  }
  abort(err: Error): void {
    this.ch.abort(err);
  }
  setLimits(l: Partial<ChannelLimits>): void {
    this.ch.setLimits(l);
  }
  memory(): ChannelMemory {
    return this.ch.memory();
  }
  stats(): ChannelStats {
    return this.ch.stats();
  }
  resetStats(): ChannelStats {
    return this.ch.resetStats();
  }
  recvBytes(what: string, expectedLength?: number): Promise<Uint8Array> {
    return recvChecked(this.ch, what, expectedLength);
  }
  sendU32Array(a: Uint32Array): void {
    this.ch.sendU32Array(a);
  }
  async recvU32Array(what: string, expectedLength?: number): Promise<Uint32Array> {
    const m = await recvChecked(this.ch, what, expectedLength === undefined ? undefined : 4 * expectedLength);
    return u32View(m, `${this.name}: malformed message: ${what}`);
  }
  sendJson(v: unknown): void {
    this.ch.sendJson(v);
  }
  recvJson<T = unknown>(what: string): Promise<T> {
    return recvJsonChecked<T>(this.ch, what);
  }
  sendParts(parts: readonly Uint8Array[]): void {
    this.ch.sendParts(parts);
  }
  async recvParts(what: string, expectedCount?: number): Promise<Uint8Array[]> {
    const parts = unpackParts(await recvChecked(this.ch, what), `${this.name}: malformed message: ${what}`);
    if (expectedCount !== undefined && parts.length !== expectedCount)
      throw malformed(`${this.name}: malformed message: ${what}: expected ${expectedCount} parts, got ${parts.length}`);
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
    const err = m && parseErrorFrame(m);
    if (err)
      return new PeerError(
        err.code,
        `${c.name}: the ${err.from} reported ${err.code} (${ERROR_CODES[err.code]}) (here: ${local.message})`,
        c,
      );
  }
  return null;
}

/**
 * Formats the error's stack (and its causes') now. Until then V8 keeps the frames' receivers and closures alive, so a
 * logged or stored error would keep a failed session's state (garbled labels, shares) in memory.
 */
function detach(e: unknown): void {
  for (let x = e, i = 0; x instanceof Error && i < 8; x = x.cause, i++) void x.stack;
}

/**
 * Runs `fn` on an error-frame-aware view of `ch`. `fn` may `adopt` further channels of the same session (e.g. to a
 * dealer): it gets their checked views, and they are closed when `fn` ends. On failure every channel's peer is told
 * the failure's code (ABORTED when another party's error caused it), except the one that reported the error or
 * disconnected; all are closed, and the error, with its local details, is rethrown.
 */
export async function guarded<T>(
  ch: Channel,
  role: PartyRole,
  fn: (ch: Channel, adopt: (other: Channel) => Channel) => Promise<T>,
): Promise<T> {
  const extra: Channel[] = [];
  const adopt = (other: Channel): Channel => {
    extra.push(other);
    return new CheckedChannel(other);
  };
  try {
    return await fn(new CheckedChannel(ch), adopt);
  } catch (e) {
    detach(e);
    const err = (e instanceof PeerError ? e : await queuedPeerError([ch, ...extra], e as Error)) ?? (e as Error);
    detach(err);
    const code: ErrorCode = err instanceof PeerError ? 'ABORTED' : codeOf(err);
    for (const c of [ch, ...extra]) {
      if (c.closed || (err instanceof PeerError && err.from === c)) continue;
      try {
        c.send(errorFrameBytes(code, role, err instanceof PeerError ? undefined : (err as PiError).retryMs));
        await Promise.race([
          c.flush(),
          new Promise((r) => {
            const t = setTimeout(r, 1000);
            (t as { unref?: () => void }).unref?.();
          }),
        ]);
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
