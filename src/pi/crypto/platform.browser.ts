// The browser crypto backend (backend.ts), bundled in place of platform.ts: @noble/ciphers' AES and @noble/hashes'
// SHA-256, synchronous pure JS. WebCrypto has no ECB mode (fixed-key AES needs π on arbitrary blocks) and its
// AES-CTR is asynchronous, while the protocol calls both inside synchronous loops; docs/pi-web.md has the
// measurements behind this choice.
import { ctr, ecb } from '@noble/ciphers/aes.js';
import { sha256 } from '@noble/hashes/sha2';
import { p256 } from '@noble/curves/nist';
import { normalizeZ } from '@noble/curves/abstract/curve';
import type { CryptoBackend, KeyStream } from './backend.js';
import { pairCount, type EcKey, type P256Backend } from './ec.js';
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

// P-256: fixed-base d·G in JS (@noble/curves' precomputed table for G, one inversion for the batch; WebCrypto cannot
// import a bare scalar portably), variable-base through WebCrypto ECDH (deriveBits: x(d·P)), all of a batch in
// flight at once. Without WebCrypto (an insecure context has no crypto.subtle) the slow pure-JS multiplication.
const Point = p256.Point;

/** The part of SubtleCrypto used here (src/pi has no DOM typings). */
interface Subtle {
  importKey(format: 'jwk' | 'raw', key: object, alg: object, extractable: boolean, usages: string[]): Promise<unknown>;
  deriveBits(alg: { name: 'ECDH'; public: unknown }, key: unknown, length: number): Promise<ArrayBuffer>;
}
const subtle = (globalThis as { crypto?: { subtle?: Subtle } }).crypto?.subtle;
const ECDH = { name: 'ECDH', namedCurve: 'P-256' };

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Unpadded base64url (JWK). */
function base64url(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 3) {
    const v = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((b.length - i) * 8) / 6));
    for (let k = 0; k < chars; k++) s += B64[(v >>> (18 - 6 * k)) & 63];
  }
  return s;
}

const toBig = (b: Uint8Array): bigint => b.reduce((x, v) => (x << 8n) | BigInt(v), 0n);

export const platformP256: P256Backend = {
  name: subtle ? 'WebCrypto ECDH P-256 + @noble/curves' : '@noble/curves P-256 (pure JS)',
  async keys(scalars) {
    const pts = normalizeZ(
      Point,
      scalars.map((d) => Point.BASE.multiply(toBig(d))),
    );
    return pts.map((p, i) => ({ d: scalars[i]!, pub: p.toBytes(false) }));
  },
  async sharedX(keys, points) {
    const n = pairCount(keys.length, points.length);
    const keyAt = (i: number) => (keys.length === 1 ? keys[0]! : keys[i]!);
    const pointAt = (i: number) => (points.length === 1 ? points[0]! : points[i]!);
    if (!subtle)
      return Array.from({ length: n }, (_, i) =>
        Point.fromBytes(pointAt(i))
          .multiply(toBig(keyAt(i).d))
          .toBytes(false)
          .slice(1, 33),
      );
    const priv = new Map<EcKey, Promise<unknown>>();
    const pub = new Map<Uint8Array, Promise<unknown>>();
    const privOf = (k: EcKey) => {
      let p = priv.get(k);
      if (!p) {
        const jwk = {
          kty: 'EC',
          crv: 'P-256',
          d: base64url(k.d),
          x: base64url(k.pub.subarray(1, 33)),
          y: base64url(k.pub.subarray(33)),
        };
        p = subtle.importKey('jwk', jwk, ECDH, false, ['deriveBits']);
        priv.set(k, p);
      }
      return p;
    };
    const pubOf = (b: Uint8Array) => {
      let p = pub.get(b);
      if (!p) {
        p = subtle.importKey('raw', b, ECDH, false, []);
        pub.set(b, p);
      }
      return p;
    };
    return Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const [d, P] = await Promise.all([privOf(keyAt(i)), pubOf(pointAt(i))]);
        return new Uint8Array(await subtle.deriveBits({ name: 'ECDH', public: P }, d, 256));
      }),
    );
  },
};
