// IKNP OT extension (Ishai-Kilian-Nissim-Petrank 2003), semi-honest, on 128 base OTs.
//
// Roles: the OT sender (the garbler / server) holds s (128 bits); the receiver (the evaluator / client) holds
// choice bits c. Per batch of m OTs the receiver sends one message u (16 bytes per OT), after which
//   sender rows q_j = t_j ⊕ c_j·s,   receiver rows t_j.
// Flavours built on it:
// - correlated OT (COT): sender gets K0_j = q_j, receiver gets K0_j ⊕ c_j·Δ with Δ = s. With the garbler's
//   free-XOR Δ as s, K0_j are the zero labels of the evaluator's input wires: 16 bytes per label, one message
//   (as in emp-toolkit's semi-honest 2PC).
// - chosen-message OT: y_b = m_b ⊕ H(q_j ⊕ b·s, j) sent back; the receiver unmasks y_c with H(t_j, j).
// - random OT: sender gets H(q_j, j), H(q_j ⊕ s, j); receiver gets H(t_j, j).
// H is the tweakable CR hash on fixed-key AES (crypto/aes.ts) with tweak j = a per-session OT counter.
//
// Both parties must call the same sequence of operations with the same m.
import type { Channel } from '../transport/channel.js';
import { systemRandom, type Random } from '../random.js';
import { Prg } from '../crypto/prg.js';
import { crHashBatch, DOMAIN_OT } from '../crypto/aes.js';
import { baseOtReceive, baseOtSend } from './baseot.js';
import { transpose128 } from './transpose.js';

const KAPPA = 128;

const padded = (m: number) => Math.ceil(m / KAPPA) * KAPPA;

function checkCount(m: number, what: string): void {
  if (!Number.isInteger(m) || m < 1 || m > 2 ** 31) throw new Error(`${what}: OT count m=${m} must be an integer in [1, 2^31]`);
}

function i32(u8: Uint8Array): Int32Array {
  const a = (u8.byteOffset & 3) === 0 ? u8 : u8.slice();
  return new Int32Array(a.buffer, a.byteOffset, a.byteLength >>> 2);
}

function rowsBytes(rows: Int32Array, m: number): Uint8Array {
  return new Uint8Array(rows.buffer, rows.byteOffset, 16 * m);
}

/** The PRG columns of one extension batch, in memory reused across batches (fresh pages are slow to touch here). */
let cols = new Uint8Array(0);
function columns(n: number): Uint8Array {
  if (cols.length < n) cols = new Uint8Array(n);
  return cols.subarray(0, n);
}

class Tweaks {
  private next = 0;
  take(m: number): number {
    const t = this.next;
    if (t + m > 2 ** 32) throw new Error('OT extension: more than 2^32 hashed OTs in one session; start a new session');
    this.next += m;
    return t;
  }
}

export class OtExtSender {
  private readonly tweaks = new Tweaks();
  private constructor(
    private readonly ch: Channel,
    /** s = Δ, 16 bytes (bit i = bit i&7 of byte i>>3). */
    readonly delta: Uint8Array,
    private readonly prgs: Prg[],
  ) {}

  /**
   * Runs the 128 base OTs (as their receiver, choices = bits of `delta`). Pass the Garbler's Δ to get
   * input labels by correlated OT; a random s is drawn otherwise. `random`: the source of every coin drawn here.
   */
  static async setup(ch: Channel, opts: { delta?: Uint8Array; random?: Random } = {}): Promise<OtExtSender> {
    const rand = opts.random ?? systemRandom;
    const s = Uint8Array.from(opts.delta ?? rand.bytes(16));
    if (s.length !== 16) throw new Error(`OtExtSender.setup: delta must be 16 bytes, got ${s.length}`);
    const bits = Array.from({ length: KAPPA }, (_, i) => (s[i >>> 3] >>> (i & 7)) & 1);
    const keys = await baseOtReceive(ch, bits, rand);
    return OtExtSender.fromBase(ch, s, keys);
  }

  /**
   * From 128 random OTs already held as their receiver (e.g. drawn from another extension, so that a session runs
   * its base OTs once): choices = the bits of `delta`, keys k_{delta_i}.
   */
  static fromBase(ch: Channel, delta: Uint8Array, keys: Uint8Array[]): OtExtSender {
    if (delta.length !== 16 || keys.length !== KAPPA) throw new Error(`OtExtSender.fromBase: need 16 bytes of delta and ${KAPPA} keys, got ${delta.length} and ${keys.length}`);
    return new OtExtSender(ch, Uint8Array.from(delta), keys.map((k) => new Prg(k)));
  }

  /** One extension batch: receives u and returns the rows q_j (4 words each, padded count). */
  private async extend(m: number, what: string): Promise<Int32Array> {
    const M = padded(m), colBytes = M >>> 3;
    const u = i32(await this.ch.recvBytes(`${what}: OT extension matrix`, KAPPA * colBytes));
    const q = columns(KAPPA * colBytes);
    for (let i = 0; i < KAPPA; i++) this.prgs[i].fill(q.subarray(i * colBytes, (i + 1) * colBytes));
    const Q = i32(q), cw = colBytes >>> 2;
    for (let i = 0; i < KAPPA; i++) {
      if (!((this.delta[i >>> 3] >>> (i & 7)) & 1)) continue;
      for (let w = i * cw; w < (i + 1) * cw; w++) Q[w] ^= u[w];
    }
    return transpose128(Q, M);
  }

  /** m correlated OTs: returns K0 (m x 16 bytes); the receiver gets K0_j ⊕ c_j·Δ. */
  async sendCorrelated(m: number): Promise<Uint8Array> {
    checkCount(m, 'sendCorrelated');
    return rowsBytes(await this.extend(m, 'sendCorrelated'), m);
  }

  /** m chosen-message OTs of 16-byte messages: m0, m1 are m x 16 bytes; the receiver learns m_{c_j}. */
  async sendChosen(m0: Uint8Array, m1: Uint8Array): Promise<void> {
    const m = m0.byteLength / 16;
    if (!Number.isInteger(m) || m1.byteLength !== m0.byteLength) {
      throw new Error(`sendChosen: m0 (${m0.byteLength} bytes) and m1 (${m1.byteLength} bytes) must be equal multiples of 16`);
    }
    checkCount(m, 'sendChosen');
    const { h0, h1 } = await this.randomPads(m, 'sendChosen');
    const a = i32(m0), b = i32(m1);
    const y = new Int32Array(8 * m);
    for (let j = 0; j < 4 * m; j++) {
      y[j] = a[j] ^ h0[j];
      y[4 * m + j] = b[j] ^ h1[j];
    }
    this.ch.send(new Uint8Array(y.buffer));
  }

  /** m random OTs: returns both 16-byte messages per OT; the receiver learns m_{c_j}. */
  async sendRandom(m: number): Promise<{ m0: Uint8Array; m1: Uint8Array }> {
    checkCount(m, 'sendRandom');
    const { h0, h1 } = await this.randomPads(m, 'sendRandom');
    return { m0: new Uint8Array(h0.buffer, 0, 16 * m), m1: new Uint8Array(h1.buffer, 0, 16 * m) };
  }

  private async randomPads(m: number, what: string): Promise<{ h0: Int32Array; h1: Int32Array }> {
    const q = await this.extend(m, what);
    const t0 = this.tweaks.take(m);
    const d = i32(this.delta);
    const qs = new Int32Array(4 * m);
    for (let j = 0; j < 4 * m; j++) qs[j] = q[j] ^ d[j & 3];
    const h0 = new Int32Array(4 * m), h1 = qs;
    crHashBatch(q, h0, m, t0, 0, 0, DOMAIN_OT);
    crHashBatch(qs, h1, m, t0, 0, 0, DOMAIN_OT);
    return { h0, h1 };
  }
}

export class OtExtReceiver {
  private readonly tweaks = new Tweaks();
  private constructor(private readonly ch: Channel, private readonly prg0: Prg[], private readonly prg1: Prg[]) {}

  /** Runs the 128 base OTs as their sender; `random`: the source of every coin drawn here. */
  static async setup(ch: Channel, opts: { random?: Random } = {}): Promise<OtExtReceiver> {
    const { k0, k1 } = await baseOtSend(ch, KAPPA, opts.random ?? systemRandom);
    return OtExtReceiver.fromBase(ch, k0, k1);
  }

  /** From 128 random OTs already held as their sender (both keys of each). */
  static fromBase(ch: Channel, k0: Uint8Array[], k1: Uint8Array[]): OtExtReceiver {
    if (k0.length !== KAPPA || k1.length !== KAPPA) throw new Error(`OtExtReceiver.fromBase: need ${KAPPA} key pairs, got ${k0.length} / ${k1.length}`);
    return new OtExtReceiver(ch, k0.map((k) => new Prg(k)), k1.map((k) => new Prg(k)));
  }

  /** Sends u for choice bits c (packed, bit j = bit j&7 of byte j>>3) and returns rows t_j. */
  private extend(choices: Uint8Array, m: number, what: string): Int32Array {
    checkCount(m, what);
    if (choices.byteLength * 8 < m) throw new Error(`${what}: ${choices.byteLength} bytes of choice bits for m=${m} OTs`);
    const M = padded(m), colBytes = M >>> 3;
    const c = new Uint8Array(colBytes);
    c.set(choices.subarray(0, Math.ceil(m / 8)));
    if (m & 7) c[m >>> 3] &= (1 << (m & 7)) - 1;
    const t = columns(KAPPA * colBytes), u = new Uint8Array(KAPPA * colBytes);
    for (let i = 0; i < KAPPA; i++) {
      this.prg0[i].fill(t.subarray(i * colBytes, (i + 1) * colBytes));
      this.prg1[i].fill(u.subarray(i * colBytes, (i + 1) * colBytes));
    }
    const T = i32(t), U = i32(u), Cw = i32(c), cw = colBytes >>> 2;
    for (let i = 0; i < KAPPA; i++) {
      const o = i * cw;
      for (let w = 0; w < cw; w++) U[o + w] ^= T[o + w] ^ Cw[w];
    }
    this.ch.send(u);
    return transpose128(T, M);
  }

  /** m correlated OTs: returns K0_j ⊕ c_j·Δ (m x 16 bytes). */
  async receiveCorrelated(choices: Uint8Array, m: number): Promise<Uint8Array> {
    return rowsBytes(this.extend(choices, m, 'receiveCorrelated'), m);
  }

  /** m chosen-message OTs: returns m_{c_j} (m x 16 bytes). */
  async receiveChosen(choices: Uint8Array, m: number): Promise<Uint8Array> {
    const h = this.pads(choices, m, 'receiveChosen');
    const y = i32(await this.ch.recvBytes('receiveChosen: masked messages', 32 * m));
    const out = new Int32Array(4 * m);
    for (let j = 0; j < m; j++) {
      const off = ((choices[j >>> 3] >>> (j & 7)) & 1) * 4 * m;
      for (let w = 4 * j; w < 4 * j + 4; w++) out[w] = y[off + w] ^ h[w];
    }
    return new Uint8Array(out.buffer);
  }

  /** m random OTs: returns the 16-byte message m_{c_j} of each. */
  async receiveRandom(choices: Uint8Array, m: number): Promise<Uint8Array> {
    return new Uint8Array(this.pads(choices, m, 'receiveRandom').buffer, 0, 16 * m);
  }

  private pads(choices: Uint8Array, m: number, what: string): Int32Array {
    const t = this.extend(choices, m, what);
    const h = new Int32Array(4 * m);
    crHashBatch(t, h, m, this.tweaks.take(m), 0, 0, DOMAIN_OT);
    return h;
  }
}
