// The Node crypto backend (backend.ts): OpenSSL through node:crypto, AES-NI. The browser bundle replaces this module
// with platform.browser.ts.
import { createCipheriv, createECDH, createHash, type Cipher } from 'node:crypto';
import type { CryptoBackend, KeyStream } from './backend.js';
import { pairCount, type EcKey, type P256Backend } from './ec.js';
import { FIXED_KEY } from './fixedkey.js';

const ZERO_IV = new Uint8Array(16);
const ZERO_CHUNK = new Uint8Array(1 << 18); // node allocates each output; fewer, larger calls are faster

let fixed: Cipher | null = null;
function fixedCipher(): Cipher {
  if (!fixed) {
    fixed = createCipheriv('aes-128-ecb', FIXED_KEY, null);
    fixed.setAutoPadding(false);
  }
  return fixed;
}

class NodeCtr implements KeyStream {
  private readonly ctr: Cipher;
  constructor(key: Uint8Array) {
    this.ctr = createCipheriv('aes-128-ctr', key, ZERO_IV);
  }
  fill(out: Uint8Array): Uint8Array {
    for (let off = 0; off < out.length; off += ZERO_CHUNK.length) {
      const n = Math.min(ZERO_CHUNK.length, out.length - off);
      out.set(this.ctr.update(n === ZERO_CHUNK.length ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, n)), off);
    }
    return out;
  }
}

export const platformBackend: CryptoBackend = {
  name: 'node:crypto (OpenSSL)',
  fixedKeyAes: (bytes) => fixedCipher().update(bytes),
  aesCtr: (key) => new NodeCtr(key),
  sha256(...parts) {
    const h = createHash('sha256');
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  },
};

// P-256 through OpenSSL's ECDH (synchronous; one object, its private key set only when it changes). setPrivateKey
// computes d·G, computeSecret returns x(d·P) and refuses points off the curve.
export const platformP256: P256Backend = {
  name: 'node:crypto ECDH prime256v1 (OpenSSL)',
  async keys(scalars) {
    const e = createECDH('prime256v1');
    return scalars.map((d) => {
      e.setPrivateKey(d);
      return { d, pub: new Uint8Array(e.getPublicKey()) };
    });
  },
  async sharedX(keys, points) {
    const n = pairCount(keys.length, points.length);
    const e = createECDH('prime256v1');
    let cur: EcKey | null = null;
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const k = keys.length === 1 ? keys[0]! : keys[i]!;
      if (k !== cur) e.setPrivateKey(k.d);
      cur = k;
      out.push(new Uint8Array(e.computeSecret(points.length === 1 ? points[0]! : points[i]!)));
    }
    return out;
  },
};
