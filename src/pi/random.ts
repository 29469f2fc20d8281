// All the randomness a party draws goes through one source given in its session options, so that tests can fix it
// (two runs that differ only in the image), couple it (masks shifted by the image difference) or check that it is
// fresh. Browser-safe: WebCrypto getRandomValues and ChaCha20 (@noble/ciphers) only.
import { chacha20 } from '@noble/ciphers/chacha.js';
import type { R64 } from './fixed.js';
import type { ReluSite } from './relusite.js';

/** A source of random bytes. */
export interface Random {
  bytes(n: number): Uint8Array;
}

/** The platform CSPRNG (crypto.getRandomValues, at most 64 KiB per call). */
export const systemRandom: Random = {
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 65536) globalThis.crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
    return out;
  },
};

const BLOCK = 64;
const REFILL = 1 << 16;

/** A deterministic byte stream (ChaCha20 keystream) from a seed of up to 32 bytes: for tests and simulations. */
export function seededRandom(seed: Uint8Array | string): Random {
  const s = typeof seed === 'string' ? new TextEncoder().encode(seed) : seed;
  if (s.byteLength > 32) throw new Error(`seededRandom: seed of ${s.byteLength} bytes is longer than 32`);
  const key = new Uint8Array(32);
  key.set(s);
  const nonce = new Uint8Array(12);
  let counter = 0,
    buf = new Uint8Array(0),
    pos = 0;
  return {
    bytes(n: number): Uint8Array {
      const out = new Uint8Array(n);
      let o = 0;
      while (o < n) {
        if (pos === buf.length) {
          buf = chacha20(key, nonce, new Uint8Array(REFILL), undefined, counter);
          counter += REFILL / BLOCK;
          pos = 0;
        }
        const k = Math.min(n - o, buf.length - pos);
        out.set(buf.subarray(pos, pos + k), o);
        o += k;
        pos += k;
      }
      return out;
    },
  };
}

/** n uniform ring elements (Z_2^64) from `rand`. */
export function randomR64(rand: Random, n: number): R64 {
  let b = rand.bytes(8 * n);
  if (b.byteOffset !== 0 || b.buffer.byteLength !== 8 * n) b = b.slice();
  return { lo: new Uint32Array(b.buffer, 0, n), hi: new Uint32Array(b.buffer, 4 * n, n) };
}

/** n uniform ring elements from the system CSPRNG (tests and benchmarks; a session draws from its own source). */
export const r64Random = (n: number): R64 => randomR64(systemRandom, n);

/** The client's randomness: its masks, and a byte source for everything else it draws. */
export interface ClientRandomness {
  /** c_0, the mask of the input (n ring elements); the server receives x - c_0. */
  inputMask(n: number): R64;
  /** r, the client's output share of a kept ReLU site (site.size ring elements), drawn offline. */
  reluMask(site: ReluSite): R64;
  /** A fresh mask of the input (n ring elements) of conv/fc op `op` that re-masks it (plan.remaskedLinears). */
  linearMask(op: number, n: number): R64;
  /** Everything else the client draws: its session id, base-OT scalars, protocol-internal coins. */
  readonly bytes: Random;
}

/** The server's randomness (the garbler's Δ and labels, base-OT scalars, protocol-internal coins). */
export interface ServerRandomness {
  readonly bytes: Random;
}

/** Masks from `masks`, everything else from `bytes` (both the system CSPRNG by default). */
export function clientRandomness(masks: Random = systemRandom, bytes: Random = masks): ClientRandomness {
  return {
    inputMask: (n) => randomR64(masks, n),
    reluMask: (site) => randomR64(masks, site.size),
    linearMask: (_op, n) => randomR64(masks, n),
    bytes,
  };
}

/** A fixed client randomness from a seed (masks and other coins from two separate streams). */
export function seededClientRandomness(seed: string): ClientRandomness {
  return clientRandomness(seededRandom(`${seed}/masks`), seededRandom(`${seed}/coins`));
}

export const serverRandomness = (bytes: Random = systemRandom): ServerRandomness => ({ bytes });
