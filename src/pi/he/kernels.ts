// The WebAssembly kernels (asm/kernels.ts, bytes in wasm.ts) behind a small engine: one instance and memory per
// party and session (sessions never share scratch memory), the parameter set's tables copied in once, and a stack
// allocator (mark / release) for the polynomials of one step. No Node-only API: the browser client uses it as is.
import { HE_KERNELS_WASM } from './wasm.js';
import type { HeParams } from './params.js';
import { CONST_WORDS, nttTableWords, rnsConstants, type RnsConstants } from './rns.js';

// The project's TypeScript lib (ES2022, no DOM) has no WebAssembly typings; declare the part used here.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmModule {
  readonly __wasmModule: unique symbol;
}
declare const WebAssembly: {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  instantiate(mod: WasmModule, imports: object): Promise<{ exports: unknown }>;
};

interface Exports {
  memory: WasmMemory;
  nttForward(a: number, tab: number, n: number, p: number): void;
  nttInverse(a: number, tab: number, n: number, p: number, ninv: number, ninvp: number): void;
  dot(
    out0: number,
    out1: number,
    ptrs: number,
    count: number,
    n: number,
    p: number,
    r32: number,
    r32p: number,
    onep: number,
    acc: number,
  ): void;
  mulMod(out: number, a: number, b: number, n: number, p: number, r32: number, r32p: number, onep: number): void;
  subMod(out: number, a: number, b: number, n: number, p: number): void;
  smallMod(out: number, e: number, n: number, p: number, add: number): void;
  addDelta(out: number, m: number, idx: number, count: number, n: number, L: number, cst: number, qlo: bigint): void;
  addFlood(out: number, idx: number, rnd: number, count: number, n: number, L: number, cst: number, bits: number): void;
  reduceWide(out: number, wide: number, n: number, L: number, cst: number): void;
  modSwitch(
    out: number,
    a: number,
    idx: number,
    count: number,
    n: number,
    L: number,
    cst: number,
    msw: number,
    k: number,
  ): void;
  decrypt(
    m: number,
    c0: number,
    idx: number,
    count: number,
    prod: number,
    n: number,
    D: number,
    crt: number,
    K: number,
    k0: number,
  ): void;
}

let compiled: Promise<WasmModule> | null = null;

function wasmModule(): Promise<WasmModule> {
  if (!compiled) {
    const bin = atob(HE_KERNELS_WASM),
      bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    compiled = WebAssembly.compile(bytes);
  }
  return compiled!;
}

const PAGE = 65536;
/** Scratch of asm dot: 2 x BLOCK (256) x 8 bytes. */
const DOT_SCRATCH = 4096;
const align = (x: number) => (x + 63) & ~63;

/** A polynomial in the engine's memory: `primes` blocks of n u32 residues at byte offset `ptr`. */
export interface Poly {
  ptr: number;
  primes: number;
}

export class HeEngine {
  readonly n: number;
  readonly L: number;
  readonly rns: RnsConstants;
  private readonly x: Exports;
  private top: number;
  private readonly tab: number;
  private readonly cst: number;
  private readonly msw0: number;
  private readonly msw1: number;
  private readonly crt: number;

  private constructor(
    readonly params: HeParams,
    instance: { exports: unknown },
  ) {
    this.x = instance.exports as unknown as Exports;
    this.n = params.n;
    this.L = params.primes.length;
    this.rns = rnsConstants(params);
    this.top = align(this.x.memory.buffer.byteLength);
    this.tab = this.alloc(4 * this.rns.ntt.length);
    this.cst = this.alloc(4 * this.rns.consts.length);
    this.msw0 = this.alloc(this.rns.msw0.length);
    this.msw1 = this.alloc(this.rns.msw1.length);
    this.crt = this.alloc(this.rns.crt.length);
    this.u32(this.tab, this.rns.ntt.length).set(this.rns.ntt);
    this.u32(this.cst, this.rns.consts.length).set(this.rns.consts);
    this.u8(this.msw0, this.rns.msw0.length).set(this.rns.msw0);
    this.u8(this.msw1, this.rns.msw1.length).set(this.rns.msw1);
    this.u8(this.crt, this.rns.crt.length).set(this.rns.crt);
  }

  static async create(params: HeParams): Promise<HeEngine> {
    return new HeEngine(params, await WebAssembly.instantiate(await wasmModule(), {}));
  }

  // -------------------------------------------------------------------------------------------- memory

  /** Bytes of scratch memory (64-byte aligned); freed by release(mark). */
  alloc(bytes: number): number {
    const p = this.top;
    this.top = align(p + bytes);
    const need = this.top - this.x.memory.buffer.byteLength;
    if (need > 0) this.x.memory.grow(Math.ceil(need / PAGE));
    return p;
  }
  mark(): number {
    return this.top;
  }
  release(mark: number): void {
    this.top = mark;
  }
  /** Bytes of memory the instance holds (it never shrinks). */
  get memoryBytes(): number {
    return this.x.memory.buffer.byteLength;
  }

  /** Fresh views (memory growth detaches earlier ones). */
  u32(ptr: number, len: number): Uint32Array {
    return new Uint32Array(this.x.memory.buffer, ptr, len);
  }
  i32(ptr: number, len: number): Int32Array {
    return new Int32Array(this.x.memory.buffer, ptr, len);
  }
  u8(ptr: number, len: number): Uint8Array {
    return new Uint8Array(this.x.memory.buffer, ptr, len);
  }
  f64(ptr: number, len: number): Float64Array {
    return new Float64Array(this.x.memory.buffer, ptr, len);
  }

  /** A polynomial of `primes` residue blocks, zeroed unless the caller overwrites it all (`zero` false). */
  poly(primes = this.L, zero = true): Poly {
    const ptr = this.alloc(4 * primes * this.n);
    if (zero) this.u32(ptr, primes * this.n).fill(0);
    return { ptr, primes };
  }
  /** The residues of prime i of `a`. */
  residues(a: Poly, i: number): Uint32Array {
    return this.u32(a.ptr + 4 * i * this.n, this.n);
  }
  words(a: Poly): Uint32Array {
    return this.u32(a.ptr, a.primes * this.n);
  }
  private at(a: Poly, i: number): number {
    return a.ptr + 4 * i * this.n;
  }

  // -------------------------------------------------------------------------------------------- arithmetic

  forward(a: Poly): void {
    const tw = nttTableWords(this.n);
    for (let i = 0; i < a.primes; i++)
      this.x.nttForward(this.at(a, i), this.tab + 4 * i * tw, this.n, this.params.primes[i]!);
  }
  inverse(a: Poly): void {
    const tw = nttTableWords(this.n);
    for (let i = 0; i < a.primes; i++)
      this.x.nttInverse(
        this.at(a, i),
        this.tab + 4 * (i * tw + 3 * this.n),
        this.n,
        this.params.primes[i]!,
        this.rns.ninv[i]!,
        this.rns.ninvp[i]!,
      );
  }
  /** out = a * b (NTT domain, elementwise), over out's primes. */
  mul(out: Poly, a: Poly, b: Poly): void {
    const r = this.rns;
    for (let i = 0; i < out.primes; i++)
      this.x.mulMod(
        this.at(out, i),
        this.at(a, i),
        this.at(b, i),
        this.n,
        this.params.primes[i]!,
        r.r32[i]!,
        r.r32p[i]!,
        r.onep[i]!,
      );
  }
  /** out = a - b. */
  sub(out: Poly, a: Poly, b: Poly): void {
    for (let i = 0; i < out.primes; i++)
      this.x.subMod(this.at(out, i), this.at(a, i), this.at(b, i), this.n, this.params.primes[i]!);
  }
  /** out (+)= e mod p_i for small signed integers e (|e| < 2^29), n of them at byte offset ePtr. */
  small(out: Poly, ePtr: number, add: boolean): void {
    for (let i = 0; i < out.primes; i++)
      this.x.smallMod(this.at(out, i), ePtr, this.n, this.params.primes[i]!, add ? 1 : 0);
  }
  /** Writes e (small signed integers) into scratch memory; returns its offset. */
  putSmall(e: Int32Array): number {
    const p = this.alloc(4 * e.length);
    this.i32(p, e.length).set(e);
    return p;
  }
  /**
   * out0 = sum_g x0_g k_g, out1 = sum_g x1_g k_g (NTT domain; out1 null: only the first). `terms`: (x0, x1, k).
   */
  dot(out0: Poly, out1: Poly | null, terms: readonly [Poly, Poly | null, Poly][]): void {
    const m = this.mark(),
      r = this.rns,
      ptrs = this.alloc(12 * terms.length),
      acc = this.alloc(DOT_SCRATCH);
    for (let i = 0; i < out0.primes; i++) {
      const t = this.u32(ptrs, 3 * terms.length);
      terms.forEach(([x0, x1, k], g) => {
        t[3 * g] = this.at(x0, i);
        t[3 * g + 1] = x1 ? this.at(x1, i) : 0;
        t[3 * g + 2] = this.at(k, i);
      });
      this.x.dot(
        this.at(out0, i),
        out1 ? this.at(out1, i) : 0,
        ptrs,
        terms.length,
        this.n,
        this.params.primes[i]!,
        r.r32[i]!,
        r.r32p[i]!,
        r.onep[i]!,
        acc,
      );
    }
    this.release(m);
  }
  /**
   * Adds round(q m / 2^64) to `out` at positions idx[j] (all positions 0..count-1 when idx is null) for m[j] in
   * Z_2^64 given as u64 at byte offset mPtr.
   */
  addDelta(out: Poly, mPtr: number, idxPtr: number, count: number): void {
    this.x.addDelta(out.ptr, mPtr, idxPtr, count, this.n, out.primes, this.cst, this.rns.qlo);
  }
  /** Adds uniform integers in [-2^(bits-1), 2^(bits-1)) at positions idx (4 random words each at rndPtr). */
  addFlood(out: Poly, idxPtr: number, rndPtr: number, count: number, bits: number): void {
    if (!(bits > 0 && bits <= 128)) throw new Error(`flooding: ${bits} bits outside (0, 128]`);
    const c = this.u32(this.cst, this.L * CONST_WORDS);
    this.params.primes.forEach((p, i) => {
      c[i * CONST_WORDS + 10] = Number((1n << BigInt(bits - 1)) % BigInt(p));
    });
    this.x.addFlood(out.ptr, idxPtr, rndPtr, count, this.n, out.primes, this.cst, bits);
  }
  /** out (primes of out) = v mod p_i for n values v < 2^96 (three u32 limbs each) at wPtr. */
  reduceWide(out: Poly, wPtr: number): void {
    this.x.reduceWide(out.ptr, wPtr, this.n, out.primes, this.cst);
  }
  /** Limbs (3 u32 per value) of round(2^k c / q) mod 2^k, k = c0Bits or c1Bits, at positions idx (all when 0). */
  modSwitch(outPtr: number, a: Poly, idxPtr: number, count: number, which: 0 | 1): void {
    if (a.primes !== this.L) throw new Error('modSwitch: the polynomial must be modulo q (all primes)');
    this.x.modSwitch(
      outPtr,
      a.ptr,
      idxPtr,
      count,
      this.n,
      this.L,
      this.cst,
      which ? this.msw1 : this.msw0,
      which ? this.params.c1Bits : this.params.c0Bits,
    );
  }
  /** m[j] (u64 at mPtr) = decryption of the positions idx[j] from c0' limbs and prod = c1' s (decPrimes residues). */
  decrypt(mPtr: number, c0Ptr: number, idxPtr: number, count: number, prod: Poly): void {
    const p = this.params;
    this.x.decrypt(mPtr, c0Ptr, idxPtr, count, prod.ptr, this.n, p.decPrimes, this.crt, p.c1Bits, p.c0Bits);
  }
}
