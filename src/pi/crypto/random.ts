// Fresh randomness without Node-only APIs (the browser client runs this): Web Crypto's getRandomValues, which
// fills at most 65,536 bytes per call.
const CHUNK = 65536;

/** Fills `out` with cryptographically secure random bytes. */
export function fillRandom<T extends Uint8Array | Uint32Array | Int32Array>(out: T): T {
  const u8 = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  for (let o = 0; o < u8.length; o += CHUNK) globalThis.crypto.getRandomValues(u8.subarray(o, Math.min(u8.length, o + CHUNK)));
  return out;
}

export const randomBytes = (n: number): Uint8Array => fillRandom(new Uint8Array(n));

/** `words` random 32-bit words (e.g. packed random bits). */
export const randomWords = (words: number): Uint32Array => fillRandom(new Uint32Array(words));
