// Seeded PRG: AES-128-CTR keystream on a 16-byte seed (the platform's backend: OpenSSL in Node, noble in the browser).
import { cryptoBackend, type KeyStream } from './backend.js';
import { systemRandom } from '../random.js';

export class Prg {
  private readonly ctr: KeyStream;

  /** `seed`: 16 bytes; a fresh random seed from the system CSPRNG when omitted. */
  constructor(seed?: Uint8Array) {
    const key = seed ?? systemRandom.bytes(16);
    if (key.length !== 16) throw new Error(`Prg: seed must be 16 bytes, got ${key.length}`);
    this.ctr = cryptoBackend.aesCtr(key);
  }

  /** Fills `out` with the next out.length keystream bytes (the stream continues across calls). */
  fill(out: Uint8Array): Uint8Array {
    return this.ctr.fill(out);
  }

  bytes(n: number): Uint8Array {
    return this.fill(new Uint8Array(n));
  }
}
