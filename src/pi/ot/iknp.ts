// IKNP OT extension (Ishai-Kilian-Nissim-Petrank 2003), semi-honest, on 128 base OTs.
//
// Roles: the OT sender (the garbler / server) holds s (128 bits); the receiver (the evaluator / client) holds
// choice bits c. Per batch of m OTs the receiver sends one message u (16 bytes per OT), after which
//   sender rows q_j = t_j ⊕ c_j·s,   receiver rows t_j.
// It is a correlated OT (ot.ts's CotSender / CotReceiver): sender gets K0_j = q_j, receiver gets K0_j ⊕ c_j·Δ with
// Δ = s. With the garbler's free-XOR Δ as s, K0_j are the zero labels of the evaluator's input wires: 16 bytes per
// label, one message (as in emp-toolkit's semi-honest 2PC). Random and chosen-message OT on it: ot.ts.
//
// Both parties must call the same sequence of operations with the same m.
import type { Channel } from '../transport/channel.js';
import { systemRandom, type Random } from '../random.js';
import { i32 } from '../bits.js';
import { Prg } from '../crypto/prg.js';
import { baseOtReceive, baseOtSend } from './baseot.js';
import { transpose128 } from './transpose.js';
import type { CotExtension, CotReceiver, CotSender } from './ot.js';

const KAPPA = 128;

const padded = (m: number) => Math.ceil(m / KAPPA) * KAPPA;

function checkCount(m: number, what: string): void {
  if (!Number.isInteger(m) || m < 1 || m > 2 ** 31)
    throw new Error(`${what}: OT count m=${m} must be an integer in [1, 2^31]`);
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

export class OtExtSender implements CotSender {
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
    if (delta.length !== 16 || keys.length !== KAPPA)
      throw new Error(
        `OtExtSender.fromBase: need 16 bytes of delta and ${KAPPA} keys, got ${delta.length} and ${keys.length}`,
      );
    return new OtExtSender(
      ch,
      Uint8Array.from(delta),
      keys.map((k) => new Prg(k)),
    );
  }

  /** One extension batch: receives u and returns the rows q_j (4 words each, padded count). */
  private async extend(m: number, what: string): Promise<Int32Array> {
    const M = padded(m),
      colBytes = M >>> 3;
    const u = i32(await this.ch.recvBytes(`${what}: OT extension matrix`, KAPPA * colBytes));
    const q = columns(KAPPA * colBytes);
    for (let i = 0; i < KAPPA; i++) this.prgs[i].fill(q.subarray(i * colBytes, (i + 1) * colBytes));
    const Q = i32(q),
      cw = colBytes >>> 2;
    for (let i = 0; i < KAPPA; i++) {
      if (!((this.delta[i >>> 3] >>> (i & 7)) & 1)) continue;
      for (let w = i * cw; w < (i + 1) * cw; w++) Q[w] ^= u[w];
    }
    return transpose128(Q, M);
  }

  /** m correlated OTs: returns K0 (m x 16 bytes); the receiver gets K0_j ⊕ c_j·Δ. */
  async sendCot(m: number): Promise<Uint8Array> {
    checkCount(m, 'sendCot');
    return rowsBytes(await this.extend(m, 'sendCot'), m);
  }
}

export class OtExtReceiver implements CotReceiver {
  private constructor(
    private readonly ch: Channel,
    private readonly prg0: Prg[],
    private readonly prg1: Prg[],
  ) {}

  /** Runs the 128 base OTs as their sender; `random`: the source of every coin drawn here. */
  static async setup(ch: Channel, opts: { random?: Random } = {}): Promise<OtExtReceiver> {
    const { k0, k1 } = await baseOtSend(ch, KAPPA, opts.random ?? systemRandom);
    return OtExtReceiver.fromBase(ch, k0, k1);
  }

  /** From 128 random OTs already held as their sender (both keys of each). */
  static fromBase(ch: Channel, k0: Uint8Array[], k1: Uint8Array[]): OtExtReceiver {
    if (k0.length !== KAPPA || k1.length !== KAPPA)
      throw new Error(`OtExtReceiver.fromBase: need ${KAPPA} key pairs, got ${k0.length} / ${k1.length}`);
    return new OtExtReceiver(
      ch,
      k0.map((k) => new Prg(k)),
      k1.map((k) => new Prg(k)),
    );
  }

  /** Sends u for choice bits c (packed, bit j = bit j&7 of byte j>>3) and returns rows t_j. */
  private extend(choices: Uint8Array, m: number, what: string): Int32Array {
    checkCount(m, what);
    if (choices.byteLength * 8 < m)
      throw new Error(`${what}: ${choices.byteLength} bytes of choice bits for m=${m} OTs`);
    const M = padded(m),
      colBytes = M >>> 3;
    const c = new Uint8Array(colBytes);
    c.set(choices.subarray(0, Math.ceil(m / 8)));
    if (m & 7) c[m >>> 3] &= (1 << (m & 7)) - 1;
    const t = columns(KAPPA * colBytes),
      u = new Uint8Array(KAPPA * colBytes);
    for (let i = 0; i < KAPPA; i++) {
      this.prg0[i].fill(t.subarray(i * colBytes, (i + 1) * colBytes));
      this.prg1[i].fill(u.subarray(i * colBytes, (i + 1) * colBytes));
    }
    const T = i32(t),
      U = i32(u),
      Cw = i32(c),
      cw = colBytes >>> 2;
    for (let i = 0; i < KAPPA; i++) {
      const o = i * cw;
      for (let w = 0; w < cw; w++) U[o + w] ^= T[o + w] ^ Cw[w];
    }
    this.ch.send(u);
    return transpose128(T, M);
  }

  /** m correlated OTs: returns K0_j ⊕ c_j·Δ (m x 16 bytes); the matrix is sent before this returns. */
  async recvCot(choices: Uint8Array, m: number): Promise<Uint8Array> {
    return rowsBytes(this.extend(choices, m, 'recvCot'), m);
  }
}

/** IKNP as the session's OT extension. */
export const iknp: CotExtension = {
  name: 'iknp',
  sender: (ch, o) => OtExtSender.setup(ch, o),
  receiver: (ch, o) => OtExtReceiver.setup(ch, o),
  senderFromBase: (ch, delta, keys) => OtExtSender.fromBase(ch, delta, keys),
  receiverFromBase: (ch, k0, k1) => OtExtReceiver.fromBase(ch, k0, k1),
};
