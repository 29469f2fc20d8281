// Half-gates garbling (Zahur-Rosulek-Evans 2015) with free-XOR and point-and-permute, vectorised over
// n instances of one circuit: each gate is processed for a chunk of instances at once, so the fixed-key
// AES behind the hash runs on thousands of blocks per call.
//
// Labels are 16-byte blocks; a label array for a group of w wires over n instances is w*n*16 bytes,
// wire-major (label of wire j, instance i at block j*n + i). Δ has lsb 1; the permute bit of a label is
// its lsb. Hash tweaks are the words (2*andIndex + side, instanceId lo, instanceId hi, DOMAIN_GC) with
// instanceId = tweakBase + i, where tweakBase counts all instances garbled under this Garbler's Δ, so no
// tweak repeats (and none equals an OT tweak, whose last word is DOMAIN_OT).
import { randomBytes } from 'node:crypto';
import { fixedKeyAes, DOMAIN_GC, AES_BATCH_BLOCKS } from '../crypto/aes.js';
import { Prg } from '../crypto/prg.js';
import { OP_AND, OP_XOR, inputGroup, outputGroup, type Circuit } from './circuit.js';
import { splitRing, joinRing, joinRingBig, type RingValues } from './ring.js';

const TWO32 = 4294967296;
const MAGIC = 0x314d4347; // 'GCM1'
const HEADER_BYTES = 32;

/** What the garbler sends for one batch: one message, `bytes` = header | tables | decode bits. */
export interface GarbledMaterial {
  readonly n: number;
  readonly tweakBase: number;
  /** numAnd * n half-gate pairs (T_G, T_E): 8 words each, gate-major, then instance. */
  readonly tables: Int32Array;
  /** Permute bits of the output wires' zero labels; bit o*n + i for output wire o, instance i. */
  readonly decode: Uint8Array;
  readonly bytes: Uint8Array;
}

export interface GarbledBatch {
  readonly circuit: Circuit;
  readonly n: number;
  readonly material: GarbledMaterial;
  /** Zero labels of every input group (garbler's and evaluator's), w*n*16 bytes each. */
  readonly zero: Readonly<Record<string, Uint8Array>>;
}

function words(u8: Uint8Array, what: string): Int32Array {
  if (u8.byteLength % 16) throw new Error(`${what}: ${u8.byteLength} bytes is not a whole number of 16-byte labels`);
  const a = (u8.byteOffset & 3) === 0 ? u8 : u8.slice();
  return new Int32Array(a.buffer, a.byteOffset, a.byteLength >>> 2);
}

function headerFor(c: Circuit, n: number, tweakBase: number, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, HEADER_BYTES);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, n, true);
  dv.setUint32(8, tweakBase >>> 0, true);
  dv.setUint32(12, Math.floor(tweakBase / TWO32), true);
  dv.setUint32(16, c.numAnd, true);
  dv.setUint32(20, c.numOutputWires, true);
  out.set(Buffer.from(c.digest.slice(0, 16), 'hex'), 24);
}

function allocMaterial(c: Circuit, n: number, tweakBase: number): GarbledMaterial {
  const tablesBytes = c.numAnd * n * 32;
  const decodeBytes = Math.ceil((c.numOutputWires * n) / 8);
  const bytes = new Uint8Array(HEADER_BYTES + tablesBytes + decodeBytes);
  headerFor(c, n, tweakBase, bytes);
  return {
    n, tweakBase, bytes,
    tables: new Int32Array(bytes.buffer, HEADER_BYTES, tablesBytes >>> 2),
    decode: bytes.subarray(HEADER_BYTES + tablesBytes),
  };
}

/** Parses a received GarbledMaterial message, checking it matches `c` (circuit digest, sizes). */
export function parseMaterial(c: Circuit, msg: Uint8Array): GarbledMaterial {
  const bytes = (msg.byteOffset & 3) === 0 ? msg : msg.slice();
  if (bytes.byteLength < HEADER_BYTES) throw new Error(`parseMaterial(${c.name}): ${bytes.byteLength}-byte message is shorter than the header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  if (dv.getUint32(0, true) !== MAGIC) throw new Error(`parseMaterial(${c.name}): bad magic, not a garbled-circuit message`);
  const n = dv.getUint32(4, true);
  const tweakBase = dv.getUint32(8, true) + dv.getUint32(12, true) * TWO32;
  const nAnd = dv.getUint32(16, true), nOut = dv.getUint32(20, true);
  const digest = Buffer.from(bytes.subarray(24, 32)).toString('hex');
  if (digest !== c.digest.slice(0, 16) || nAnd !== c.numAnd || nOut !== c.numOutputWires) {
    throw new Error(`parseMaterial(${c.name}): message is for another circuit (digest ${digest}, ${nAnd} ANDs, ${nOut} outputs; expected ${c.digest.slice(0, 16)}, ${c.numAnd}, ${c.numOutputWires})`);
  }
  const tablesBytes = nAnd * n * 32;
  const expected = HEADER_BYTES + tablesBytes + Math.ceil((nOut * n) / 8);
  if (bytes.byteLength !== expected) {
    throw new Error(`parseMaterial(${c.name}): ${bytes.byteLength} bytes, expected ${expected} for n=${n}`);
  }
  return {
    n, tweakBase, bytes,
    tables: new Int32Array(bytes.buffer, bytes.byteOffset + HEADER_BYTES, tablesBytes >>> 2),
    decode: bytes.subarray(HEADER_BYTES + tablesBytes),
  };
}

export interface GarblerOptions {
  /** 16-byte global offset Δ; its lsb is forced to 1. Random when omitted. */
  delta?: Uint8Array;
  /** Seed for the label PRG (tests); random when omitted. */
  seed?: Uint8Array;
  /** Instances per chunk (default 4096: 4 AES blocks per AND per instance, 16K blocks per call). */
  chunk?: number;
}

export class Garbler {
  readonly delta: Uint8Array;
  private readonly d: Int32Array;
  private readonly prg: Prg;
  private readonly chunk: number;
  private nextInstance = 0;

  constructor(opts: GarblerOptions = {}) {
    const d = Uint8Array.from(opts.delta ?? randomBytes(16));
    if (d.length !== 16) throw new Error(`Garbler: delta must be 16 bytes, got ${d.length}`);
    d[0] |= 1;
    this.delta = d;
    this.d = new Int32Array(d.buffer);
    this.prg = new Prg(opts.seed);
    this.chunk = Math.max(1, Math.min(opts.chunk ?? 4096, AES_BATCH_BLOCKS >>> 2));
  }

  /**
   * Garbles n instances of `c`. Zero labels of input groups come from `zeroLabels` when given (e.g. the
   * sender's outputs of correlated OT, so the evaluator's OT outputs are its input labels), else from the PRG.
   */
  garble(c: Circuit, n: number, zeroLabels: Readonly<Record<string, Uint8Array>> = {}): GarbledBatch {
    if (!Number.isInteger(n) || n < 1 || n >= TWO32) throw new Error(`garble(${c.name}): n=${n} must be a positive integer < 2^32`);
    for (const name of Object.keys(zeroLabels)) inputGroup(c, name);
    const tweakBase = this.nextInstance;
    if (tweakBase + n > Number.MAX_SAFE_INTEGER) throw new Error('garble: instance counter exhausted');
    this.nextInstance += n;
    const material = allocMaterial(c, n, tweakBase);

    const zero: Record<string, Uint8Array> = {};
    const zeroWords: Int32Array[] = []; // per input group
    for (const g of c.inputs) {
      const bytes = g.wires.length * n * 16;
      const given = zeroLabels[g.name];
      if (given && given.byteLength !== bytes) {
        throw new Error(`garble(${c.name}): zero labels for '${g.name}' have ${given.byteLength} bytes, expected ${bytes} (${g.wires.length} wires x ${n} x 16)`);
      }
      zero[g.name] = given ?? this.prg.bytes(bytes);
      zeroWords.push(words(zero[g.name], `garble(${c.name}) '${g.name}'`));
    }

    const C = Math.min(this.chunk, n);
    const CW = C * 4; // words per slot
    const W = new Int32Array(c.numSlots * CW);
    const U = new Int32Array(C * 16);
    const t1 = new Int32Array(C), t2 = new Int32Array(C);
    const d0 = this.d[0], d1 = this.d[1], d2 = this.d[2], d3 = this.d[3];
    // σ(Δ): since σ is linear, σ(A ⊕ Δ) = σ(A) ⊕ σ(Δ).
    const sd0 = d2, sd1 = d3, sd2 = d2 ^ d0, sd3 = d3 ^ d1;
    const { op, in0, in1, out } = c;
    const T = material.tables, dec = material.decode;

    for (let c0 = 0; c0 < n; c0 += C) {
      const cs = Math.min(C, n - c0);
      for (let i = 0; i < cs; i++) {
        const id = tweakBase + c0 + i;
        t1[i] = id | 0;
        t2[i] = Math.floor(id / TWO32);
      }
      c.inputs.forEach((g, gi) => {
        const z = zeroWords[gi];
        for (let j = 0; j < g.wires.length; j++) {
          W.set(z.subarray((j * n + c0) * 4, (j * n + c0 + cs) * 4), g.wires[j] * CW);
        }
      });
      let andIdx = 0;
      for (let k = 0; k < op.length; k++) {
        const a = in0[k] * CW, o = out[k] * CW;
        if (op[k] === OP_XOR) {
          const b = in1[k] * CW;
          for (let q = 0; q < 4 * cs; q++) W[o + q] = W[a + q] ^ W[b + q];
        } else if (op[k] !== OP_AND) {
          for (let q = 0; q < 4 * cs; q += 4) {
            W[o + q] = W[a + q] ^ d0; W[o + q + 1] = W[a + q + 1] ^ d1;
            W[o + q + 2] = W[a + q + 2] ^ d2; W[o + q + 3] = W[a + q + 3] ^ d3;
          }
        } else {
          const b = in1[k] * CW;
          const j0 = 2 * andIdx, j1 = j0 + 1;
          for (let i = 0; i < cs; i++) {
            const pa = a + 4 * i, pb = b + 4 * i, u = 16 * i;
            const a0 = W[pa], a1 = W[pa + 1], a2 = W[pa + 2], a3 = W[pa + 3];
            const ti1 = t1[i], ti2 = t2[i];
            const x0 = a2 ^ j0, x1 = a3 ^ ti1, x2 = a2 ^ a0 ^ ti2, x3 = a3 ^ a1 ^ DOMAIN_GC;
            U[u] = x0; U[u + 1] = x1; U[u + 2] = x2; U[u + 3] = x3;
            U[u + 4] = x0 ^ sd0; U[u + 5] = x1 ^ sd1; U[u + 6] = x2 ^ sd2; U[u + 7] = x3 ^ sd3;
            const b0 = W[pb], b1 = W[pb + 1], b2 = W[pb + 2], b3 = W[pb + 3];
            const y0 = b2 ^ j1, y1 = b3 ^ ti1, y2 = b2 ^ b0 ^ ti2, y3 = b3 ^ b1 ^ DOMAIN_GC;
            U[u + 8] = y0; U[u + 9] = y1; U[u + 10] = y2; U[u + 11] = y3;
            U[u + 12] = y0 ^ sd0; U[u + 13] = y1 ^ sd1; U[u + 14] = y2 ^ sd2; U[u + 15] = y3 ^ sd3;
          }
          const E = fixedKeyAes(U, 4 * cs);
          let tb = (andIdx * n + c0) * 8;
          for (let i = 0; i < cs; i++, tb += 8) {
            const pa = a + 4 * i, pb = b + 4 * i, po = o + 4 * i, u = 16 * i;
            const ma = -(W[pa] & 1), mb = -(W[pb] & 1);
            // H(A0), H(A1) = E ⊕ U; H(A0) ⊕ H(A1) = E0 ⊕ E1 ⊕ σ(Δ).
            const ha0 = E[u] ^ U[u], ha1 = E[u + 1] ^ U[u + 1], ha2 = E[u + 2] ^ U[u + 2], ha3 = E[u + 3] ^ U[u + 3];
            const g0 = E[u] ^ E[u + 4] ^ sd0 ^ (mb & d0), g1 = E[u + 1] ^ E[u + 5] ^ sd1 ^ (mb & d1);
            const g2 = E[u + 2] ^ E[u + 6] ^ sd2 ^ (mb & d2), g3 = E[u + 3] ^ E[u + 7] ^ sd3 ^ (mb & d3);
            const hb0 = E[u + 8] ^ U[u + 8], hb1 = E[u + 9] ^ U[u + 9], hb2 = E[u + 10] ^ U[u + 10], hb3 = E[u + 11] ^ U[u + 11];
            const hx0 = E[u + 8] ^ E[u + 12] ^ sd0, hx1 = E[u + 9] ^ E[u + 13] ^ sd1;
            const hx2 = E[u + 10] ^ E[u + 14] ^ sd2, hx3 = E[u + 11] ^ E[u + 15] ^ sd3;
            // T_G = H(A0) ⊕ H(A1) ⊕ p_b Δ;  W_G0 = H(A0) ⊕ p_a T_G
            // T_E = H(B0) ⊕ H(B1) ⊕ A0;     W_E0 = H(B0) ⊕ p_b (T_E ⊕ A0) = H(B_{p_b})
            T[tb] = g0; T[tb + 1] = g1; T[tb + 2] = g2; T[tb + 3] = g3;
            T[tb + 4] = hx0 ^ W[pa]; T[tb + 5] = hx1 ^ W[pa + 1]; T[tb + 6] = hx2 ^ W[pa + 2]; T[tb + 7] = hx3 ^ W[pa + 3];
            W[po] = ha0 ^ (ma & g0) ^ hb0 ^ (mb & hx0);
            W[po + 1] = ha1 ^ (ma & g1) ^ hb1 ^ (mb & hx1);
            W[po + 2] = ha2 ^ (ma & g2) ^ hb2 ^ (mb & hx2);
            W[po + 3] = ha3 ^ (ma & g3) ^ hb3 ^ (mb & hx3);
          }
          andIdx++;
        }
      }
      for (const g of c.outputs) {
        for (let j = 0; j < g.wires.length; j++) {
          const s = g.wires[j] * CW;
          const base = (g.offset + j) * n + c0;
          for (let i = 0; i < cs; i++) {
            const idx = base + i;
            dec[idx >>> 3] |= (W[s + 4 * i] & 1) << (idx & 7);
          }
        }
      }
    }
    return { circuit: c, n, material, zero };
  }

  /** Labels of input group `group` (garbler's) for `values` (ring elements, bit j of value i -> wire j). */
  encode(batch: GarbledBatch, group: string, values: RingValues): Uint8Array {
    const g = inputGroup(batch.circuit, group);
    const n = batch.n, w = g.wires.length;
    if (values.length !== n) throw new Error(`encode(${batch.circuit.name}, '${group}'): ${values.length} values, expected n=${n}`);
    const { lo, hi } = splitRing(values, Math.max(2, w));
    const z = words(batch.zero[group], 'encode');
    const out = new Uint8Array(w * n * 16);
    const L = new Int32Array(out.buffer);
    const d0 = this.d[0], d1 = this.d[1], d2 = this.d[2], d3 = this.d[3];
    for (let j = 0; j < w; j++) {
      const src = j < 32 ? lo : hi, sh = j & 31;
      for (let i = 0; i < n; i++) {
        const p = 4 * (j * n + i), m = -((src[i] >>> sh) & 1);
        L[p] = z[p] ^ (m & d0); L[p + 1] = z[p + 1] ^ (m & d1);
        L[p + 2] = z[p + 2] ^ (m & d2); L[p + 3] = z[p + 3] ^ (m & d3);
      }
    }
    return out;
  }
}

/** Labels for value 1 given zero labels: zero ⊕ Δ per block (the second message of a chosen-message OT). */
export function withDelta(zero: Uint8Array, delta: Uint8Array): Uint8Array {
  const out = zero.slice();
  for (let p = 0; p < out.length; p += 16) for (let q = 0; q < 16; q++) out[p + q] ^= delta[q];
  return out;
}

export interface EvaluateOptions {
  /** Instances per chunk (default 8192: 2 AES blocks per AND per instance, 16K blocks per call). */
  chunk?: number;
}

/**
 * Evaluates n garbled instances. `inputs` maps every input group to its labels (w*n*16 bytes, wire-major).
 * Returns the output labels (numOutputWires*n*16 bytes, wire-major, output groups in order).
 */
export function evaluate(
  c: Circuit, m: GarbledMaterial, inputs: Readonly<Record<string, Uint8Array>>, opts: EvaluateOptions = {},
): Uint8Array {
  const n = m.n;
  if (m.tables.length !== c.numAnd * n * 8) throw new Error(`evaluate(${c.name}): tables hold ${m.tables.length} words, expected ${c.numAnd * n * 8}`);
  const inWords = c.inputs.map((g) => {
    const l = inputs[g.name];
    if (!l) throw new Error(`evaluate(${c.name}): missing labels for input group '${g.name}'`);
    if (l.byteLength !== g.wires.length * n * 16) {
      throw new Error(`evaluate(${c.name}): labels for '${g.name}' have ${l.byteLength} bytes, expected ${g.wires.length * n * 16}`);
    }
    return words(l, `evaluate(${c.name}) '${g.name}'`);
  });
  const outBytes = new Uint8Array(c.numOutputWires * n * 16);
  const OUT = new Int32Array(outBytes.buffer);
  const C = Math.max(1, Math.min(opts.chunk ?? 8192, n, AES_BATCH_BLOCKS >>> 1));
  const CW = C * 4;
  const W = new Int32Array(c.numSlots * CW);
  const U = new Int32Array(C * 8);
  const t1 = new Int32Array(C), t2 = new Int32Array(C);
  const { op, in0, in1, out } = c;
  const T = m.tables;

  for (let c0 = 0; c0 < n; c0 += C) {
    const cs = Math.min(C, n - c0);
    for (let i = 0; i < cs; i++) {
      const id = m.tweakBase + c0 + i;
      t1[i] = id | 0;
      t2[i] = Math.floor(id / TWO32);
    }
    c.inputs.forEach((g, gi) => {
      const z = inWords[gi];
      for (let j = 0; j < g.wires.length; j++) W.set(z.subarray((j * n + c0) * 4, (j * n + c0 + cs) * 4), g.wires[j] * CW);
    });
    let andIdx = 0;
    for (let k = 0; k < op.length; k++) {
      const a = in0[k] * CW, o = out[k] * CW;
      if (op[k] === OP_XOR) {
        const b = in1[k] * CW;
        for (let q = 0; q < 4 * cs; q++) W[o + q] = W[a + q] ^ W[b + q];
      } else if (op[k] !== OP_AND) {
        W.copyWithin(o, a, a + 4 * cs);
      } else {
        const b = in1[k] * CW;
        const j0 = 2 * andIdx, j1 = j0 + 1;
        for (let i = 0; i < cs; i++) {
          const pa = a + 4 * i, pb = b + 4 * i, u = 8 * i;
          const a0 = W[pa], a1 = W[pa + 1], a2 = W[pa + 2], a3 = W[pa + 3];
          const b0 = W[pb], b1 = W[pb + 1], b2 = W[pb + 2], b3 = W[pb + 3];
          const ti1 = t1[i], ti2 = t2[i];
          U[u] = a2 ^ j0; U[u + 1] = a3 ^ ti1; U[u + 2] = a2 ^ a0 ^ ti2; U[u + 3] = a3 ^ a1 ^ DOMAIN_GC;
          U[u + 4] = b2 ^ j1; U[u + 5] = b3 ^ ti1; U[u + 6] = b2 ^ b0 ^ ti2; U[u + 7] = b3 ^ b1 ^ DOMAIN_GC;
        }
        const E = fixedKeyAes(U, 2 * cs);
        let tb = (andIdx * n + c0) * 8;
        for (let i = 0; i < cs; i++, tb += 8) {
          const pa = a + 4 * i, pb = b + 4 * i, po = o + 4 * i, u = 8 * i;
          const sa = -(W[pa] & 1), sb = -(W[pb] & 1);
          // W = H(A) ⊕ s_a T_G ⊕ H(B) ⊕ s_b (T_E ⊕ A)
          W[po] = E[u] ^ U[u] ^ E[u + 4] ^ U[u + 4] ^ (sa & T[tb]) ^ (sb & (T[tb + 4] ^ W[pa]));
          W[po + 1] = E[u + 1] ^ U[u + 1] ^ E[u + 5] ^ U[u + 5] ^ (sa & T[tb + 1]) ^ (sb & (T[tb + 5] ^ W[pa + 1]));
          W[po + 2] = E[u + 2] ^ U[u + 2] ^ E[u + 6] ^ U[u + 6] ^ (sa & T[tb + 2]) ^ (sb & (T[tb + 6] ^ W[pa + 2]));
          W[po + 3] = E[u + 3] ^ U[u + 3] ^ E[u + 7] ^ U[u + 7] ^ (sa & T[tb + 3]) ^ (sb & (T[tb + 7] ^ W[pa + 3]));
        }
        andIdx++;
      }
    }
    for (const g of c.outputs) {
      for (let j = 0; j < g.wires.length; j++) {
        OUT.set(W.subarray(g.wires[j] * CW, g.wires[j] * CW + 4 * cs), ((g.offset + j) * n + c0) * 4);
      }
    }
  }
  return outBytes;
}

/** Output bits of group `name` (default: the first): lsb(label) ⊕ decode bit, as low/high words per instance. */
export function decodeSplit(
  c: Circuit, m: GarbledMaterial, outLabels: Uint8Array, name?: string,
): { lo: Uint32Array; hi: Uint32Array } {
  const g = outputGroup(c, name), n = m.n;
  if (outLabels.byteLength !== c.numOutputWires * n * 16) {
    throw new Error(`decode(${c.name}): ${outLabels.byteLength} bytes of output labels, expected ${c.numOutputWires * n * 16}`);
  }
  const lo = new Uint32Array(n), hi = new Uint32Array(n);
  for (let j = 0; j < g.wires.length; j++) {
    const dst = j < 32 ? lo : hi, sh = j & 31, base = (g.offset + j) * n;
    for (let i = 0; i < n; i++) {
      const idx = base + i;
      dst[i] |= ((outLabels[16 * idx] ^ (m.decode[idx >>> 3] >>> (idx & 7))) & 1) << sh;
    }
  }
  return { lo, hi };
}

/** Decoded output group as ring elements in [0, 2^w) (w = group width <= 53). */
export function decodeRing(c: Circuit, m: GarbledMaterial, outLabels: Uint8Array, name?: string): Float64Array {
  const { lo, hi } = decodeSplit(c, m, outLabels, name);
  return joinRing(lo, hi, outputGroup(c, name).wires.length);
}

export function decodeRingBig(c: Circuit, m: GarbledMaterial, outLabels: Uint8Array, name?: string): BigUint64Array {
  const { lo, hi } = decodeSplit(c, m, outLabels, name);
  return joinRingBig(lo, hi);
}
