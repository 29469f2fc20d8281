// The OT interface the protocols above are written against, after emp-ot's COT: an OT extension provides correlated
// OT (`sendCot` / `recvCot`: the sender gets K0_j, the receiver K0_j ⊕ c_j·Δ for the sender's global Δ), and random
// and chosen-message OT are built on any COT by hashing (RotSender / RotReceiver below, emp-ot's send_rot /
// recv_rot). IKNP (iknp.ts) is one COT; a silent OT (Ferret-style) would be another, plugged in where ot/session.ts
// picks the extension (`SESSION_COT`, a `CotExtension`; the gc ReLU's labels use it too), with no change to KK13,
// the millionaires' protocol, the Z_2^64 correlated OT or the ReLU protocols.
import type { Channel } from '../transport/channel.js';
import type { Random } from '../random.js';
import { i32 } from '../bits.js';
import { crHashBatch, DOMAIN_OT } from '../crypto/aes.js';

/** Correlated OT, sender side. */
export interface CotSender {
  /** Δ, 16 bytes (bit i = bit i&7 of byte i>>3). */
  readonly delta: Uint8Array;
  /** m correlated OTs: K0 (m x 16 bytes); the receiver gets K0_j ⊕ c_j·Δ. */
  sendCot(m: number): Promise<Uint8Array>;
}

/** Correlated OT, receiver side. */
export interface CotReceiver {
  /**
   * m correlated OTs for choice bits c (packed little-endian, bit j = bit j&7 of byte j>>3): K0_j ⊕ c_j·Δ (m x 16
   * bytes). Whatever it sends, it sends before it first awaits (callers may start it and await it later).
   */
  recvCot(choices: Uint8Array, m: number): Promise<Uint8Array>;
}

/** An OT extension: COTs from base OTs run now, or from 128 random OTs already held (a session runs base OTs once). */
export interface CotExtension {
  readonly name: string;
  /** As the sender, with Δ given (e.g. the garbler's) or drawn from `random`. */
  sender(ch: Channel, o: { delta?: Uint8Array; random?: Random }): Promise<CotSender>;
  receiver(ch: Channel, o: { random?: Random }): Promise<CotReceiver>;
  /** From 128 random OTs held as their receiver: choices = the bits of `delta`, keys k_{delta_i}. */
  senderFromBase(ch: Channel, delta: Uint8Array, keys: Uint8Array[]): CotSender;
  /** From 128 random OTs held as their sender (both keys of each). */
  receiverFromBase(ch: Channel, k0: Uint8Array[], k1: Uint8Array[]): CotReceiver;
}

/** Per-session hash tweaks: each random OT is hashed under its own index. */
class Tweaks {
  private next = 0;
  take(m: number): number {
    const t = this.next;
    if (t + m > 2 ** 32) throw new Error('OT: more than 2^32 hashed OTs in one session; start a new session');
    this.next += m;
    return t;
  }
}

/**
 * Random and chosen-message OT from a COT (sender): m_b = H(K0_j ⊕ b·Δ, j) with H the tweakable CR hash on fixed-key
 * AES (crypto/aes.ts), j a counter of this object. Use one per COT and session, on both sides in the same order.
 */
export class RotSender implements CotSender {
  private readonly tweaks = new Tweaks();
  constructor(
    private readonly ch: Channel,
    readonly cot: CotSender,
  ) {}

  get delta(): Uint8Array {
    return this.cot.delta;
  }

  sendCot(m: number): Promise<Uint8Array> {
    return this.cot.sendCot(m);
  }

  /** m random OTs: both 16-byte messages of each; the receiver learns m_{c_j}. */
  async sendRandom(m: number): Promise<{ m0: Uint8Array; m1: Uint8Array }> {
    const { h0, h1 } = await this.pads(m);
    return { m0: new Uint8Array(h0.buffer, 0, 16 * m), m1: new Uint8Array(h1.buffer, 0, 16 * m) };
  }

  /** m chosen-message OTs of 16-byte messages (m0, m1: m x 16 bytes); the receiver learns m_{c_j}. 32 B/OT reply. */
  async sendChosen(m0: Uint8Array, m1: Uint8Array): Promise<void> {
    const m = m0.byteLength / 16;
    if (!Number.isInteger(m) || m1.byteLength !== m0.byteLength) {
      throw new Error(
        `sendChosen: m0 (${m0.byteLength} bytes) and m1 (${m1.byteLength} bytes) must be equal multiples of 16`,
      );
    }
    const { h0, h1 } = await this.pads(m);
    const a = i32(m0),
      b = i32(m1);
    const y = new Int32Array(8 * m);
    for (let j = 0; j < 4 * m; j++) {
      y[j] = a[j] ^ h0[j];
      y[4 * m + j] = b[j] ^ h1[j];
    }
    this.ch.send(new Uint8Array(y.buffer));
  }

  private async pads(m: number): Promise<{ h0: Int32Array; h1: Int32Array }> {
    const q = i32(await this.cot.sendCot(m));
    const t0 = this.tweaks.take(m);
    const d = i32(this.cot.delta);
    const qs = new Int32Array(4 * m);
    for (let j = 0; j < 4 * m; j++) qs[j] = q[j] ^ d[j & 3];
    const h0 = new Int32Array(4 * m),
      h1 = qs;
    crHashBatch(q, h0, m, t0, 0, 0, DOMAIN_OT);
    crHashBatch(qs, h1, m, t0, 0, 0, DOMAIN_OT);
    return { h0, h1 };
  }
}

/** Random and chosen-message OT from a COT (receiver): m_c = H(K0_j ⊕ c_j·Δ, j). */
export class RotReceiver implements CotReceiver {
  private readonly tweaks = new Tweaks();
  constructor(
    private readonly ch: Channel,
    readonly cot: CotReceiver,
  ) {}

  recvCot(choices: Uint8Array, m: number): Promise<Uint8Array> {
    return this.cot.recvCot(choices, m);
  }

  /** m random OTs: the 16-byte message m_{c_j} of each. */
  async receiveRandom(choices: Uint8Array, m: number): Promise<Uint8Array> {
    return new Uint8Array((await this.pads(choices, m)).buffer, 0, 16 * m);
  }

  /** m chosen-message OTs: m_{c_j} (m x 16 bytes). */
  async receiveChosen(choices: Uint8Array, m: number): Promise<Uint8Array> {
    const h = await this.pads(choices, m);
    const y = i32(await this.ch.recvBytes('receiveChosen: masked messages', 32 * m));
    const out = new Int32Array(4 * m);
    for (let j = 0; j < m; j++) {
      const off = ((choices[j >>> 3] >>> (j & 7)) & 1) * 4 * m;
      for (let w = 4 * j; w < 4 * j + 4; w++) out[w] = y[off + w] ^ h[w];
    }
    return new Uint8Array(out.buffer);
  }

  /** Starts the COT at once (its message goes out before the first await), then hashes. */
  private pads(choices: Uint8Array, m: number): Promise<Int32Array> {
    const cot = this.cot.recvCot(choices, m);
    const t0 = this.tweaks.take(m);
    return cot.then((k) => {
      const h = new Int32Array(4 * m);
      crHashBatch(i32(k), h, m, t0, 0, 0, DOMAIN_OT);
      return h;
    });
  }
}
