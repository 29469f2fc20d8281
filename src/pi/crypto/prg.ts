// Seeded PRG: AES-128-CTR keystream (OpenSSL, AES-NI), a stream cipher on a 16-byte seed.
import { createCipheriv, randomBytes, type Cipher } from 'node:crypto';

const ZERO_IV = new Uint8Array(16);
const ZERO_CHUNK = new Uint8Array(1 << 18); // node allocates each output; fewer, larger calls are faster

export class Prg {
  private readonly ctr: Cipher;

  /** `seed`: 16 bytes; a fresh random seed from crypto.randomBytes when omitted. */
  constructor(seed?: Uint8Array) {
    const key = seed ?? randomBytes(16);
    if (key.length !== 16) throw new Error(`Prg: seed must be 16 bytes, got ${key.length}`);
    this.ctr = createCipheriv('aes-128-ctr', key, ZERO_IV);
  }

  /** Fills `out` with the next out.length keystream bytes (the stream continues across calls). */
  fill(out: Uint8Array): Uint8Array {
    for (let off = 0; off < out.length; off += ZERO_CHUNK.length) {
      const n = Math.min(ZERO_CHUNK.length, out.length - off);
      out.set(this.ctr.update(n === ZERO_CHUNK.length ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, n)), off);
    }
    return out;
  }

  bytes(n: number): Uint8Array {
    return this.fill(new Uint8Array(n));
  }
}
