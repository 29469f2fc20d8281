// Boolean circuits in a compact form (typed arrays of gate op / inputs / output) and a builder with
// constant folding, dead-gate removal and wire-slot reuse (so a garbling chunk touches little memory).
import { cryptoBackend, toHex } from '../crypto/backend.js';
import { splitRing, joinRing, joinRingBig, ringLength, type RingValues } from './ring.js';

export const OP_XOR = 0;
export const OP_AND = 1;
export const OP_NOT = 2;

export type Party = 'garbler' | 'evaluator';

export interface InputGroup {
  readonly name: string;
  readonly party: Party;
  /** Wire slots, least significant bit first. */
  readonly wires: Uint32Array;
}

export interface OutputGroup {
  readonly name: string;
  readonly wires: Uint32Array;
  /** Index of this group's first wire among all output wires (the order of output labels / decode bits). */
  readonly offset: number;
}

export interface Circuit {
  readonly name: string;
  /** Wire storage slots after liveness-based reuse; gates read/write slots. */
  readonly numSlots: number;
  readonly inputs: readonly InputGroup[];
  readonly outputs: readonly OutputGroup[];
  readonly numOutputWires: number;
  readonly op: Uint8Array;
  readonly in0: Uint32Array;
  /** Unused (0) for NOT. */
  readonly in1: Uint32Array;
  readonly out: Uint32Array;
  readonly numAnd: number;
  readonly numXor: number;
  readonly numNot: number;
  /** SHA-256 (hex) of the structure; both parties can compare it before running. */
  readonly digest: string;
}

export function inputGroup(c: Circuit, name: string): InputGroup {
  const g = c.inputs.find((x) => x.name === name);
  if (!g)
    throw new Error(`circuit ${c.name}: no input group '${name}' (has ${c.inputs.map((x) => x.name).join(', ')})`);
  return g;
}

export function outputGroup(c: Circuit, name?: string): OutputGroup {
  const g = name === undefined ? c.outputs[0] : c.outputs.find((x) => x.name === name);
  if (!g)
    throw new Error(`circuit ${c.name}: no output group '${name}' (has ${c.outputs.map((x) => x.name).join(', ')})`);
  return g;
}

/** A builder wire: a gate/input id >= 0, or one of the folded constants. */
export type Wire = number;
export const ZERO: Wire = -1;
export const ONE: Wire = -2;

export class CircuitBuilder {
  private nInputs = 0;
  private groups: { name: string; party: Party; wires: Wire[] }[] = [];
  private ops: number[] = [];
  private a: number[] = [];
  private b: number[] = [];
  private outs: { name: string; wires: Wire[] }[] = [];
  private notOf = new Map<Wire, Wire>();

  input(name: string, party: Party, width: number): Wire[] {
    if (this.ops.length)
      throw new Error(`CircuitBuilder: input '${name}' declared after gates; declare all inputs first`);
    if (this.groups.some((g) => g.name === name)) throw new Error(`CircuitBuilder: duplicate input group '${name}'`);
    const wires = Array.from({ length: width }, (_, i) => this.nInputs + i);
    this.nInputs += width;
    this.groups.push({ name, party, wires });
    return wires;
  }

  private gate(op: number, x: Wire, y: Wire): Wire {
    this.ops.push(op);
    this.a.push(x);
    this.b.push(y);
    return this.nInputs + this.ops.length - 1;
  }

  xor(x: Wire, y: Wire): Wire {
    if (x === ZERO) return y;
    if (y === ZERO) return x;
    if (x === ONE) return this.not(y);
    if (y === ONE) return this.not(x);
    if (x === y) return ZERO;
    if (this.notOf.get(x) === y) return ONE;
    return this.gate(OP_XOR, x, y);
  }

  and(x: Wire, y: Wire): Wire {
    if (x === ZERO || y === ZERO) return ZERO;
    if (x === ONE) return y;
    if (y === ONE) return x;
    if (x === y) return x;
    if (this.notOf.get(x) === y) return ZERO;
    return this.gate(OP_AND, x, y);
  }

  not(x: Wire): Wire {
    if (x === ZERO) return ONE;
    if (x === ONE) return ZERO;
    const known = this.notOf.get(x);
    if (known !== undefined) return known;
    const w = this.gate(OP_NOT, x, 0);
    this.notOf.set(x, w);
    this.notOf.set(w, x);
    return w;
  }

  or(x: Wire, y: Wire): Wire {
    return this.not(this.and(this.not(x), this.not(y)));
  }

  /** s ? y : x with one AND: x ⊕ (s ∧ (x ⊕ y)). */
  mux(s: Wire, x: Wire, y: Wire): Wire {
    return this.xor(x, this.and(s, this.xor(x, y)));
  }

  output(name: string, wires: Wire[]): void {
    if (this.outs.some((g) => g.name === name)) throw new Error(`CircuitBuilder: duplicate output group '${name}'`);
    this.outs.push({ name, wires: wires.slice() });
  }

  build(name: string): Circuit {
    if (this.nInputs === 0) throw new Error(`CircuitBuilder(${name}): a circuit needs at least one input`);
    if (!this.outs.length) throw new Error(`CircuitBuilder(${name}): no outputs`);
    // Constant outputs become x⊕x (label 0, value 0) and its NOT; constants are public, so this leaks nothing.
    let c0: Wire | null = null;
    const constWire = (w: Wire): Wire => {
      if (w >= 0) return w;
      if (c0 === null) c0 = this.gate(OP_XOR, 0, 0);
      return w === ZERO ? c0 : this.gate(OP_NOT, c0, 0);
    };
    const outs = this.outs.map((g) => ({ name: g.name, wires: g.wires.map(constWire) }));

    // Dead-gate removal (backwards) and last use of every wire.
    const nG = this.ops.length,
      nW = this.nInputs + nG;
    const live = new Uint8Array(nW);
    for (const g of outs) for (const w of g.wires) live[w] = 1;
    for (let g = nG - 1; g >= 0; g--) {
      if (!live[this.nInputs + g]) continue;
      live[this.a[g]] = 1;
      if (this.ops[g] !== OP_NOT) live[this.b[g]] = 1;
    }
    const lastUse = new Int32Array(nW).fill(-1);
    const keep: number[] = [];
    for (let g = 0; g < nG; g++) {
      if (!live[this.nInputs + g]) continue;
      keep.push(g);
      lastUse[this.a[g]] = keep.length - 1;
      if (this.ops[g] !== OP_NOT) lastUse[this.b[g]] = keep.length - 1;
    }
    const isOut = new Uint8Array(nW);
    for (const g of outs) for (const w of g.wires) isOut[w] = 1;

    // Slot allocation: inputs take slots 0..nInputs-1; a slot is freed after its wire's last use
    // (after the gate's output got a slot, so a gate never writes a slot it reads).
    const slot = new Int32Array(nW).fill(-1);
    for (let i = 0; i < this.nInputs; i++) slot[i] = i;
    const free: number[] = [];
    let numSlots = this.nInputs;
    const m = keep.length;
    const op = new Uint8Array(m),
      in0 = new Uint32Array(m),
      in1 = new Uint32Array(m),
      out = new Uint32Array(m);
    const release = (w: Wire, k: number) => {
      if (lastUse[w] === k && !isOut[w]) free.push(slot[w]);
    };
    // Inputs never read by any live gate are released immediately.
    for (let i = 0; i < this.nInputs; i++) if (lastUse[i] < 0 && !isOut[i]) free.push(i);
    let nAnd = 0,
      nXor = 0,
      nNot = 0;
    for (let k = 0; k < m; k++) {
      const g = keep[k],
        w = this.nInputs + g;
      op[k] = this.ops[g];
      in0[k] = slot[this.a[g]];
      in1[k] = this.ops[g] === OP_NOT ? 0 : slot[this.b[g]];
      const s = free.length ? free.pop()! : numSlots++;
      slot[w] = s;
      out[k] = s;
      release(this.a[g], k);
      if (this.ops[g] !== OP_NOT && this.b[g] !== this.a[g]) release(this.b[g], k);
      if (op[k] === OP_AND) nAnd++;
      else if (op[k] === OP_XOR) nXor++;
      else nNot++;
    }

    let offset = 0;
    const outputs: OutputGroup[] = outs.map((g) => {
      const r = { name: g.name, wires: Uint32Array.from(g.wires.map((w) => slot[w])), offset };
      offset += g.wires.length;
      return r;
    });
    const inputs: InputGroup[] = this.groups.map((g) => ({
      name: g.name,
      party: g.party,
      wires: Uint32Array.from(g.wires),
    }));
    const digest = toHex(
      cryptoBackend.sha256(
        JSON.stringify({
          name,
          inputs: inputs.map((g) => [g.name, g.party, g.wires.length]),
          outputs: outputs.map((g) => [g.name, Array.from(g.wires)]),
        }),
        ...[op, in0, in1, out].map((arr) => new Uint8Array(arr.buffer)),
      ),
    );
    return {
      name,
      numSlots,
      inputs,
      outputs,
      numOutputWires: offset,
      op,
      in0,
      in1,
      out,
      numAnd: nAnd,
      numXor: nXor,
      numNot: nNot,
      digest,
    };
  }
}

/**
 * Plaintext evaluation of n instances, bit-sliced (32 instances per word). Reference for tests and for
 * checking garbled results. Returns each output group's values split into low/high 32-bit words.
 */
export function evalPlainSplit(
  c: Circuit,
  n: number,
  inputs: Record<string, RingValues>,
): Record<string, { lo: Uint32Array; hi: Uint32Array }> {
  const nw = Math.ceil(n / 32);
  const wires = new Int32Array(c.numSlots * nw);
  for (const g of c.inputs) {
    const v = inputs[g.name];
    if (!v) throw new Error(`evalPlain(${c.name}): missing input group '${g.name}'`);
    if (ringLength(v) !== n)
      throw new Error(`evalPlain(${c.name}): input '${g.name}' has ${ringLength(v)} values, expected ${n}`);
    const { lo, hi } = splitRing(v, Math.min(64, Math.max(2, g.wires.length)));
    g.wires.forEach((s, j) => {
      const src = j < 32 ? lo : hi;
      const sh = j & 31;
      for (let i = 0; i < n; i++) wires[s * nw + (i >>> 5)] |= ((src[i] >>> sh) & 1) << (i & 31);
    });
  }
  for (let k = 0; k < c.op.length; k++) {
    const a = c.in0[k] * nw,
      b = c.in1[k] * nw,
      o = c.out[k] * nw;
    if (c.op[k] === OP_XOR) for (let i = 0; i < nw; i++) wires[o + i] = wires[a + i] ^ wires[b + i];
    else if (c.op[k] === OP_AND) for (let i = 0; i < nw; i++) wires[o + i] = wires[a + i] & wires[b + i];
    else for (let i = 0; i < nw; i++) wires[o + i] = ~wires[a + i];
  }
  const res: Record<string, { lo: Uint32Array; hi: Uint32Array }> = {};
  for (const g of c.outputs) {
    const lo = new Uint32Array(n),
      hi = new Uint32Array(n);
    g.wires.forEach((s, j) => {
      const dst = j < 32 ? lo : hi;
      const sh = j & 31;
      for (let i = 0; i < n; i++) dst[i] |= ((wires[s * nw + (i >>> 5)] >>> (i & 31)) & 1) << sh;
    });
    res[g.name] = { lo, hi };
  }
  return res;
}

/** evalPlainSplit with outputs as doubles (groups of width <= 53). */
export function evalPlain(c: Circuit, n: number, inputs: Record<string, RingValues>): Record<string, Float64Array> {
  const s = evalPlainSplit(c, n, inputs);
  const out: Record<string, Float64Array> = {};
  for (const g of c.outputs) out[g.name] = joinRing(s[g.name].lo, s[g.name].hi, g.wires.length);
  return out;
}

/** evalPlainSplit with outputs as BigUint64Array. */
export function evalPlainBig(
  c: Circuit,
  n: number,
  inputs: Record<string, RingValues>,
): Record<string, BigUint64Array> {
  const s = evalPlainSplit(c, n, inputs);
  const out: Record<string, BigUint64Array> = {};
  for (const g of c.outputs) out[g.name] = joinRingBig(s[g.name].lo, s[g.name].hi);
  return out;
}
