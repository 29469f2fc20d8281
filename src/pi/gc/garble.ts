// Half-gates garbling (Zahur-Rosulek-Evans 2015) with free-XOR and point-and-permute, vectorised over
// n instances of one circuit: each gate is processed for a chunk of instances at once, so the fixed-key
// AES behind the hash runs on thousands of blocks per call; label arithmetic runs in the WebAssembly SIMD
// kernels of ../crypto/simd.ts, whose memory holds the chunk's wire labels.
//
// Labels are 16-byte blocks; a label array for a group of w wires over n instances is w*n*16 bytes,
// wire-major (label of wire j, instance i at block j*n + i). Δ has lsb 1; the permute bit of a label is
// its lsb. Hash tweaks are the words (2*andIndex + side, instanceId lo, instanceId hi, DOMAIN_GC) with
// instanceId = tweakBase + i, where tweakBase counts all instances garbled under this Garbler's Δ, so no
// tweak repeats (and none equals an OT tweak, whose last word is DOMAIN_OT).
import { systemRandom } from '../random.js';
import { fromHex, toHex } from '../crypto/backend.js';
import { fixedKeyAesBytes, DOMAIN_GC, AES_BATCH_BLOCKS } from '../crypto/aes.js';
import { gcKernels, type GcKernels } from '../crypto/simd.js';
import { Prg } from '../crypto/prg.js';
import { OP_AND, OP_XOR, inputGroup, outputGroup, type Circuit } from './circuit.js';
import { splitRing, joinRing, joinRingBig, ringLength, type RingValues } from './ring.js';

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

/** Tweak blocks (0, id lo, id hi, DOMAIN_GC) for instances first .. first+count-1, at byte offset `at`. */
function writeTweaks(m32: Int32Array, at: number, first: number, count: number): void {
  for (let i = 0, p = at >>> 2; i < count; i++, p += 4) {
    const id = first + i;
    m32[p] = 0;
    m32[p + 1] = id | 0;
    m32[p + 2] = Math.floor(id / TWO32);
    m32[p + 3] = DOMAIN_GC;
  }
}

function headerFor(c: Circuit, n: number, tweakBase: number, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, HEADER_BYTES);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, n, true);
  dv.setUint32(8, tweakBase >>> 0, true);
  dv.setUint32(12, Math.floor(tweakBase / TWO32), true);
  dv.setUint32(16, c.numAnd, true);
  dv.setUint32(20, c.numOutputWires, true);
  out.set(fromHex(c.digest.slice(0, 16)), 24);
}

function allocMaterial(c: Circuit, n: number, tweakBase: number): GarbledMaterial {
  const tablesBytes = c.numAnd * n * 32;
  const decodeBytes = Math.ceil((c.numOutputWires * n) / 8);
  const bytes = new Uint8Array(HEADER_BYTES + tablesBytes + decodeBytes);
  headerFor(c, n, tweakBase, bytes);
  return {
    n,
    tweakBase,
    bytes,
    tables: new Int32Array(bytes.buffer, HEADER_BYTES, tablesBytes >>> 2),
    decode: bytes.subarray(HEADER_BYTES + tablesBytes),
  };
}

/** Parses a received GarbledMaterial message, checking it matches `c` (circuit digest, sizes). */
export function parseMaterial(c: Circuit, msg: Uint8Array): GarbledMaterial {
  const bytes = (msg.byteOffset & 3) === 0 ? msg : msg.slice();
  if (bytes.byteLength < HEADER_BYTES)
    throw new Error(`parseMaterial(${c.name}): ${bytes.byteLength}-byte message is shorter than the header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  if (dv.getUint32(0, true) !== MAGIC)
    throw new Error(`parseMaterial(${c.name}): bad magic, not a garbled-circuit message`);
  const n = dv.getUint32(4, true);
  const tweakBase = dv.getUint32(8, true) + dv.getUint32(12, true) * TWO32;
  const nAnd = dv.getUint32(16, true),
    nOut = dv.getUint32(20, true);
  const digest = toHex(bytes.subarray(24, 32));
  if (digest !== c.digest.slice(0, 16) || nAnd !== c.numAnd || nOut !== c.numOutputWires) {
    throw new Error(
      `parseMaterial(${c.name}): message is for another circuit (digest ${digest}, ${nAnd} ANDs, ${nOut} outputs; expected ${c.digest.slice(0, 16)}, ${c.numAnd}, ${c.numOutputWires})`,
    );
  }
  const tablesBytes = nAnd * n * 32;
  const expected = HEADER_BYTES + tablesBytes + Math.ceil((nOut * n) / 8);
  if (bytes.byteLength !== expected) {
    throw new Error(`parseMaterial(${c.name}): ${bytes.byteLength} bytes, expected ${expected} for n=${n}`);
  }
  return {
    n,
    tweakBase,
    bytes,
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
    const d = Uint8Array.from(opts.delta ?? systemRandom.bytes(16));
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
    if (!Number.isInteger(n) || n < 1 || n >= TWO32)
      throw new Error(`garble(${c.name}): n=${n} must be a positive integer < 2^32`);
    for (const name of Object.keys(zeroLabels)) inputGroup(c, name);
    const tweakBase = this.nextInstance;
    if (tweakBase + n > Number.MAX_SAFE_INTEGER) throw new Error('garble: instance counter exhausted');
    this.nextInstance += n;
    const material = allocMaterial(c, n, tweakBase);

    const zero: Record<string, Uint8Array> = {};
    for (const g of c.inputs) {
      const bytes = g.wires.length * n * 16;
      const given = zeroLabels[g.name];
      if (given && given.byteLength !== bytes) {
        throw new Error(
          `garble(${c.name}): zero labels for '${g.name}' have ${given.byteLength} bytes, expected ${bytes} (${g.wires.length} wires x ${n} x 16)`,
        );
      }
      zero[g.name] = given ?? this.prg.bytes(bytes);
    }

    const K = gcKernels();
    const C = Math.min(this.chunk, n);
    const SB = C * 16; // bytes per wire slot
    const TW = 64,
      W0 = TW + SB,
      U = W0 + c.numSlots * SB,
      E = U + 4 * SB,
      TT = E + 4 * SB,
      DEC = TT + 2 * SB;
    K.ensure(DEC + material.decode.byteLength);
    K.u8.fill(0, DEC, DEC + material.decode.byteLength);
    const mem = K.u8,
      m32 = K.i32;
    const d = this.d;
    mem.set(this.delta, 0);
    m32.set([d[2], d[3], d[2] ^ d[0], d[3] ^ d[1]], 4); // σ(Δ) at byte 16
    const { op, in0, in1, out } = c;
    const tables = new Uint8Array(material.tables.buffer, material.tables.byteOffset, material.tables.byteLength);

    for (let c0 = 0; c0 < n; c0 += C) {
      const cs = Math.min(C, n - c0);
      writeTweaks(m32, TW, tweakBase + c0, cs);
      c.inputs.forEach((g) => {
        const z = zero[g.name];
        for (let j = 0; j < g.wires.length; j++)
          mem.set(z.subarray((j * n + c0) * 16, (j * n + c0 + cs) * 16), W0 + g.wires[j] * SB);
      });
      let andIdx = 0;
      for (let k = 0; k < op.length; k++) {
        const a = W0 + in0[k] * SB,
          o = W0 + out[k] * SB;
        if (op[k] === OP_XOR) K.xor(o, a, W0 + in1[k] * SB, cs);
        else if (op[k] !== OP_AND) K.xorc(o, a, cs);
        else {
          const b = W0 + in1[k] * SB;
          K.gpre(a, b, U, TW, cs, 2 * andIdx);
          mem.set(fixedKeyAesBytes(mem.subarray(U, U + 64 * cs)), E);
          K.gpost(a, b, o, U, E, TT, cs);
          tables.set(mem.subarray(TT, TT + 32 * cs), (andIdx * n + c0) * 32);
          andIdx++;
        }
      }
      for (const g of c.outputs) {
        for (let j = 0; j < g.wires.length; j++) K.setbits(W0 + g.wires[j] * SB, DEC, (g.offset + j) * n + c0, cs);
      }
    }
    material.decode.set(mem.subarray(DEC, DEC + material.decode.byteLength));
    return { circuit: c, n, material, zero };
  }

  /** Labels of input group `group` (garbler's) for `values` (ring elements, bit j of value i -> wire j). */
  encode(batch: GarbledBatch, group: string, values: RingValues): Uint8Array {
    const g = inputGroup(batch.circuit, group);
    const len = ringLength(values);
    if (len !== batch.n)
      throw new Error(`encode(${batch.circuit.name}, '${group}'): ${len} values, expected n=${batch.n}`);
    return this.encodeLabels(batch.zero[group], g.wires.length, values);
  }

  /**
   * encode() from a group's zero labels alone (w*n*16 bytes), so that between garbling (offline) and
   * encoding (online) the server need only keep batch.zero.a, not the whole batch.
   */
  encodeLabels(zero: Uint8Array, w: number, values: RingValues): Uint8Array {
    const n = ringLength(values);
    if (zero.byteLength !== w * n * 16)
      throw new Error(`encodeLabels: ${zero.byteLength} bytes of zero labels, expected ${w} wires x ${n} values x 16`);
    const { lo, hi } = splitRing(values, Math.max(2, w));
    const out = new Uint8Array(w * n * 16);
    const K = gcKernels();
    const C = Math.min(n, 8192);
    const VALS = 64,
      Z = VALS + 8 * C,
      O = Z + 16 * C;
    K.ensure(O + 16 * C);
    const mem = K.u8,
      m32 = K.i32;
    mem.set(this.delta, 0);
    for (let c0 = 0; c0 < n; c0 += C) {
      const cs = Math.min(C, n - c0);
      m32.set(lo.subarray(c0, c0 + cs), VALS >>> 2);
      m32.set(hi.subarray(c0, c0 + cs), (VALS >>> 2) + C);
      for (let j = 0; j < w; j++) {
        const at = (j * n + c0) * 16;
        mem.set(zero.subarray(at, at + 16 * cs), Z);
        K.encode(Z, O, j < 32 ? VALS : VALS + 4 * C, cs, j & 31);
        out.set(mem.subarray(O, O + 16 * cs), at);
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
 * Runs the evaluator over chunks of instances; after each chunk `sink(c0, cs, slotAddr)` reads the output
 * wires from module memory (slotAddr(slot) = byte address of that slot's first label). `extra` bytes of
 * module memory are reserved for the sink, at the returned `extraAt` address.
 */
function runEvaluator(
  c: Circuit,
  m: GarbledMaterial,
  inputs: Readonly<Record<string, Uint8Array>>,
  opts: EvaluateOptions,
  extra: number,
  sink: (K: GcKernels, extraAt: number, c0: number, cs: number, slotAddr: (slot: number) => number) => void,
): void {
  const n = m.n;
  if (m.tables.length !== c.numAnd * n * 8)
    throw new Error(`evaluate(${c.name}): tables hold ${m.tables.length} words, expected ${c.numAnd * n * 8}`);
  const inBytes = c.inputs.map((g) => {
    const l = inputs[g.name];
    if (!l) throw new Error(`evaluate(${c.name}): missing labels for input group '${g.name}'`);
    if (l.byteLength !== g.wires.length * n * 16) {
      throw new Error(
        `evaluate(${c.name}): labels for '${g.name}' have ${l.byteLength} bytes, expected ${g.wires.length * n * 16}`,
      );
    }
    return l;
  });
  const K = gcKernels();
  const C = Math.max(1, Math.min(opts.chunk ?? 8192, n, AES_BATCH_BLOCKS >>> 1));
  const SB = C * 16;
  const TW = 64,
    W0 = TW + SB,
    U = W0 + c.numSlots * SB,
    E = U + 2 * SB,
    TT = E + 2 * SB,
    X = TT + 2 * SB;
  K.ensure(X + extra);
  const mem = K.u8,
    m32 = K.i32;
  const { op, in0, in1, out } = c;
  const tables = new Uint8Array(m.tables.buffer, m.tables.byteOffset, m.tables.byteLength);
  const slotAddr = (slot: number) => W0 + slot * SB;

  for (let c0 = 0; c0 < n; c0 += C) {
    const cs = Math.min(C, n - c0);
    writeTweaks(m32, TW, m.tweakBase + c0, cs);
    c.inputs.forEach((g, gi) => {
      const z = inBytes[gi];
      for (let j = 0; j < g.wires.length; j++)
        mem.set(z.subarray((j * n + c0) * 16, (j * n + c0 + cs) * 16), W0 + g.wires[j] * SB);
    });
    let andIdx = 0;
    for (let k = 0; k < op.length; k++) {
      const a = W0 + in0[k] * SB,
        o = W0 + out[k] * SB;
      if (op[k] === OP_XOR) K.xor(o, a, W0 + in1[k] * SB, cs);
      else if (op[k] !== OP_AND) mem.copyWithin(o, a, a + 16 * cs);
      else {
        const b = W0 + in1[k] * SB;
        K.epre(a, b, U, TW, cs, 2 * andIdx);
        mem.set(fixedKeyAesBytes(mem.subarray(U, U + 32 * cs)), E);
        const t = (andIdx * n + c0) * 32;
        mem.set(tables.subarray(t, t + 32 * cs), TT);
        K.epost(a, b, o, U, E, TT, cs);
        andIdx++;
      }
    }
    sink(K, X, c0, cs, slotAddr);
  }
}

/**
 * Evaluates n garbled instances. `inputs` maps every input group to its labels (w*n*16 bytes, wire-major).
 * Returns the output labels (numOutputWires*n*16 bytes, wire-major, output groups in order).
 */
export function evaluate(
  c: Circuit,
  m: GarbledMaterial,
  inputs: Readonly<Record<string, Uint8Array>>,
  opts: EvaluateOptions = {},
): Uint8Array {
  const n = m.n;
  const outBytes = new Uint8Array(c.numOutputWires * n * 16);
  runEvaluator(c, m, inputs, opts, 0, (K, _x, c0, cs, slotAddr) => {
    for (const g of c.outputs) {
      for (let j = 0; j < g.wires.length; j++) {
        const s = slotAddr(g.wires[j]);
        outBytes.set(K.u8.subarray(s, s + 16 * cs), ((g.offset + j) * n + c0) * 16);
      }
    }
  });
  return outBytes;
}

/** Evaluates and decodes output group `output` (default: the first) in one pass: values split in 32-bit words. */
export function evaluateDecoded(
  c: Circuit,
  m: GarbledMaterial,
  inputs: Readonly<Record<string, Uint8Array>>,
  opts: EvaluateOptions & { output?: string } = {},
): { lo: Uint32Array; hi: Uint32Array } {
  const g = outputGroup(c, opts.output),
    n = m.n,
    w = g.wires.length;
  const lo = new Uint32Array(n),
    hi = new Uint32Array(n);
  const decBytes = m.decode.byteLength;
  const C = Math.max(1, Math.min(opts.chunk ?? 8192, n));
  // extra memory: decode bits, then lo / hi words for one chunk
  runEvaluator(c, m, inputs, opts, decBytes + 8 * C + 16, (K, X, c0, cs, slotAddr) => {
    const LO = X + ((decBytes + 3) & ~3),
      HI = LO + 4 * cs;
    if (c0 === 0) K.u8.set(m.decode, X);
    K.u8.fill(0, LO, HI + 4 * cs);
    for (let j = 0; j < w; j++)
      K.decacc(slotAddr(g.wires[j]), X, (g.offset + j) * n + c0, j < 32 ? LO : HI, cs, j & 31);
    lo.set(new Uint32Array(K.u8.buffer, LO, cs), c0);
    hi.set(new Uint32Array(K.u8.buffer, HI, cs), c0);
  });
  return { lo, hi };
}

/** evaluateDecoded as ring elements in [0, 2^w) (w = output width <= 53): the client's share for the ReLU circuits. */
export function evaluateRing(
  c: Circuit,
  m: GarbledMaterial,
  inputs: Readonly<Record<string, Uint8Array>>,
  opts: EvaluateOptions & { output?: string } = {},
): Float64Array {
  const { lo, hi } = evaluateDecoded(c, m, inputs, opts);
  return joinRing(lo, hi, outputGroup(c, opts.output).wires.length);
}

/** Output bits of group `name` (default: the first): lsb(label) ⊕ decode bit, as low/high words per instance. */
export function decodeSplit(
  c: Circuit,
  m: GarbledMaterial,
  outLabels: Uint8Array,
  name?: string,
): { lo: Uint32Array; hi: Uint32Array } {
  const g = outputGroup(c, name),
    n = m.n;
  if (outLabels.byteLength !== c.numOutputWires * n * 16) {
    throw new Error(
      `decode(${c.name}): ${outLabels.byteLength} bytes of output labels, expected ${c.numOutputWires * n * 16}`,
    );
  }
  const lo = new Uint32Array(n),
    hi = new Uint32Array(n);
  for (let j = 0; j < g.wires.length; j++) {
    const dst = j < 32 ? lo : hi,
      sh = j & 31,
      base = (g.offset + j) * n;
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
