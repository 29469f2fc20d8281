// Protocol-level message checks and error frames. A party that fails sends one error frame
// ({"pi_error": message}) before closing, so the peer reports the cause instead of a bare disconnect.
import type { Channel } from './transport.js';

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
  if (err !== null) throw new PeerError(`${ch.name}: peer reported an error while we waited for ${what}: ${err}`);
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

/** An error the peer reported (not re-sent to it). */
export class PeerError extends Error {}

/** Runs `fn`; on failure tells the peer (unless the peer caused it by reporting or disconnecting), closes, rethrows. */
export async function guarded<T>(ch: Channel, role: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const err = e as Error;
    if (!(err instanceof PeerError) && !ch.closed) {
      try {
        ch.sendJson({ pi_error: `${role}: ${err.message}` });
        await ch.flush();
      } catch {
        // the peer is gone already
      }
    }
    ch.close();
    throw err;
  }
}
