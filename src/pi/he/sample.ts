// Randomness of the RLWE scheme. Fresh randomness comes from the party's injected source (random.ts: the OS CSPRNG
// by default, in Node and browsers; tests fix it); public uniform polynomials are expanded from 16-byte seeds with
// AES-128-CTR (WebCrypto), so that an upload carries a seed instead of its half `a`.
//   ternary (secret key, the server's re-randomisation u): uniform in {-1, 0, 1}; each byte < 243 gives five digits
//     (3^5 = 243), bytes >= 243 are rejected (the number of rejections is independent of the values).
//   error: centred binomial CBD(eta), popcount(a) - popcount(b) for independent uniform eta-bit a, b: |e| <= eta,
//     variance eta / 2 (eta = 21: sigma = 3.24). Branch-free per sample.
//   uniform mod p (a from a seed): 30-bit words, rejection of values >= p (p > 2^30 - 2^20: under 0.1% rejected).
//   Stream d of a seed: AES-128-CTR (zero IV, 128-bit counter) under the key K_d = AES_seed(d), d as a 128-bit
//   big-endian block. Per-stream keys let Node expand with OpenSSL synchronously (cryptoBackend): WebCrypto's
//   asynchronous calls cost ~1 ms per 200 KB upload here, the expansion itself ~0.1 ms.
import type { Random } from '../random.js';
import { cryptoBackend } from '../crypto/backend.js';

/** Node's backend is OpenSSL (fast, synchronous); the browser bundle's is pure JS, where WebCrypto is faster. */
const nativeAes = cryptoBackend.name.startsWith('node:');

/** Fills `out` from `rand`. */
export function randomFill<T extends Uint8Array | Uint32Array | Int32Array>(out: T, rand: Random): T {
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(rand.bytes(out.byteLength));
  return out;
}

export const randomSeed = (rand: Random): Uint8Array => rand.bytes(16);

/** n uniform ternary values. */
export function sampleTernary(n: number, rand: Random): Int32Array {
  const out = new Int32Array(n);
  let k = 0;
  while (k < n) {
    const buf = rand.bytes(Math.ceil((n - k) / 5) + 16);
    for (let i = 0; i < buf.length && k < n; i++) {
      let b = buf[i]!;
      if (b >= 243) continue;
      for (let d = 0; d < 5 && k < n; d++) {
        out[k++] = (b % 3) - 1;
        b = (b / 3) | 0;
      }
    }
  }
  return out;
}

const popcount = (x: number) => {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
};

/** n samples of CBD(eta), eta <= 32. */
export function sampleCbd(n: number, eta: number, rand: Random): Int32Array {
  if (!(eta >= 1 && eta <= 32)) throw new Error(`CBD: eta ${eta} outside [1, 32]`);
  const w = randomFill(new Uint32Array(2 * n), rand),
    out = new Int32Array(n);
  const mask = eta === 32 ? 0xffffffff : (1 << eta) - 1;
  for (let i = 0; i < n; i++) out[i] = popcount(w[2 * i]! & mask) - popcount(w[2 * i + 1]! & mask);
  return out;
}

/** Keystreams from a 16-byte seed; stream `domain` is AES-128-CTR under its own key K_domain = AES_seed(domain). */
export class Xof {
  private constructor(private readonly seed: Uint8Array) {}

  static async create(seed: Uint8Array): Promise<Xof> {
    if (seed.length !== 16) throw new Error(`seed: ${seed.length} bytes, expected 16`);
    return new Xof(seed.slice());
  }

  /** K_domain: block `domain` of the seed's own zero-IV keystream, i.e. AES_seed(domain). */
  key(domain: number): Uint8Array {
    const d = domain >>> 0;
    return cryptoBackend
      .aesCtr(this.seed)
      .fill(new Uint8Array(16 * (d + 1)))
      .slice(16 * d);
  }

  /** `words` u32 of stream `domain`, from block `block` on. */
  async words(domain: number, words: number, block = 0): Promise<Uint32Array> {
    const key = this.key(domain),
      skip = 16 * (block >>> 0),
      bytes = new Uint8Array(skip + 4 * words);
    if (nativeAes) cryptoBackend.aesCtr(key).fill(bytes);
    else {
      const k = await subtle().importKey('raw', key, 'AES-CTR', false, ['encrypt']);
      bytes.set(
        new Uint8Array(await subtle().encrypt({ name: 'AES-CTR', counter: new Uint8Array(16), length: 128 }, k, bytes)),
      );
    }
    return new Uint32Array(bytes.buffer, skip, words);
  }

  /** Residues uniform mod each prime, n per prime (prime-major), from stream `domain`. */
  async uniform(domain: number, primes: readonly number[], n: number): Promise<Uint32Array> {
    const out = new Uint32Array(primes.length * n);
    const slack = 64;
    let stream = await this.words(domain, primes.length * (n + slack)),
      used = 0,
      block = stream.length / 4;
    for (let i = 0; i < primes.length; i++) {
      const p = primes[i]!;
      for (let k = 0; k < n; ) {
        if (used === stream.length) {
          stream = await this.words(domain, 4096, block);
          block += 1024;
          used = 0;
        }
        // no await inside this loop: it stays a plain loop for the JIT
        for (; used < stream.length && k < n; used++) {
          const v = stream[used]! & 0x3fffffff;
          if (v < p) out[i * n + k++] = v;
        }
      }
    }
    return out;
  }
}

// WebCrypto's subtle API, typed by hand: the project's lib (ES2022, no DOM) has no WebCrypto typings.
interface CryptoKeyLike {
  readonly type: string;
}
interface SubtleLike {
  importKey(
    format: 'raw',
    key: Uint8Array,
    alg: 'AES-CTR',
    extractable: boolean,
    usages: string[],
  ): Promise<CryptoKeyLike>;
  encrypt(
    alg: { name: 'AES-CTR'; counter: Uint8Array; length: number },
    key: CryptoKeyLike,
    data: Uint8Array,
  ): Promise<ArrayBuffer>;
}
const subtle = (): SubtleLike => (globalThis.crypto as unknown as { subtle: SubtleLike }).subtle;
