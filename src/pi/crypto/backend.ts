// The symmetric primitives of the protocol behind one small interface, chosen when the module graph loads: Node gets
// node:crypto (OpenSSL, AES-NI; platform.ts), the browser bundle gets @noble/ciphers and @noble/hashes (synchronous
// pure JS; platform.browser.ts), swapped in by the bundler (scripts/build-web.mjs). Every call site stays synchronous.
// The P-256 scalar multiplications of the base OTs (P256Backend) are split the same way: ECDH of node:crypto, or
// WebCrypto ECDH (asynchronous, hence the batched, promise-returning interface).
import { platformBackend, platformP256 } from './platform.js';
import type { P256Backend } from './ec.js';

export type { EcKey, P256Backend } from './ec.js';

/** An AES-128-CTR keystream (zero IV, 128-bit big-endian counter) that continues across calls. */
export interface KeyStream {
  fill(out: Uint8Array): Uint8Array;
}

export interface CryptoBackend {
  readonly name: string;
  /** AES-128 under the public fixed key on whole 16-byte blocks; returns a fresh array. */
  fixedKeyAes(bytes: Uint8Array): Uint8Array;
  /** A keystream on a 16-byte key. */
  aesCtr(key: Uint8Array): KeyStream;
  /** SHA-256 of the concatenation of `parts` (strings as UTF-8). */
  sha256(...parts: (Uint8Array | string)[]): Uint8Array;
}

export const cryptoBackend: CryptoBackend = platformBackend;

export const p256Backend: P256Backend = platformP256;

/** Lowercase hex of bytes. */
export const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** Bytes of lowercase or uppercase hex (an even number of digits). */
export function fromHex(s: string): Uint8Array {
  if (s.length % 2 || /[^0-9a-fA-F]/.test(s)) throw new Error(`not a hex string: '${s.slice(0, 40)}'`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}
