// The browser crypto backend (backend.ts), bundled in place of platform.ts: @noble/ciphers' AES and @noble/hashes'
// SHA-256, synchronous pure JS. WebCrypto has no ECB mode (fixed-key AES needs π on arbitrary blocks) and its
// AES-CTR is asynchronous, while the protocol calls both inside synchronous loops; docs/pi-web.md has the
// measurements behind this choice.
import { ctr, ecb } from '@noble/ciphers/aes.js';
import { sha256 } from '@noble/hashes/sha2';
import type { CryptoBackend, KeyStream } from './backend.js';
import { FIXED_KEY } from './fixedkey.js';

/** The 16-byte big-endian counter block of block number `block` (< 2^53). */
function counterBlock(block: number): Uint8Array {
  const iv = new Uint8Array(16);
  let v = block;
  for (let i = 15; i >= 8 && v > 0; i--) {
    iv[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return iv;
}

class NobleCtr implements KeyStream {
  private pos = 0; // keystream bytes handed out so far
  constructor(private readonly key: Uint8Array) {}
  fill(out: Uint8Array): Uint8Array {
    if (!out.length) return out;
    const block = Math.floor(this.pos / 16),
      skip = this.pos % 16;
    const ks = ctr(this.key, counterBlock(block)).encrypt(new Uint8Array(skip + out.length));
    out.set(ks.subarray(skip));
    this.pos += out.length;
    return out;
  }
}

const enc = new TextEncoder();

export const platformBackend: CryptoBackend = {
  name: '@noble/ciphers + @noble/hashes (pure JS)',
  fixedKeyAes: (bytes) => ecb(FIXED_KEY, { disablePadding: true }).encrypt(bytes),
  aesCtr: (key) => new NobleCtr(Uint8Array.from(key)),
  sha256(...parts) {
    const h = sha256.create();
    for (const p of parts) h.update(typeof p === 'string' ? enc.encode(p) : p);
    return h.digest();
  },
};
