// WebAssembly SIMD kernels for the hot loops: XOR gates and half-gate pre/post-processing around the
// batched AES (garbling), input encoding, output decoding, the IKNP bit transpose, and the silent OT's LPN encoding. Plain JS typed-array
// loops run ~1.5 ns per 32-bit word here; v128 ops do a 16-byte label in about that time. The module is
// assembled below from opcodes (no toolchain needed) and validated by WebAssembly.Module at load; AES itself
// stays in the crypto backend (node:crypto with AES-NI in Node), fed from the module's memory.
//
// Memory layout (byte offsets, chosen by the caller except the first 32 bytes):
//   0: Δ   16: σ(Δ)   tw: per-instance tweak blocks (0, id lo, id hi, DOMAIN_GC)
// All kernels loop over n instances; label pointers advance 16 bytes per instance.

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

const I32 = 0x7f,
  V128 = 0x7b;
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32c = (v: number) => [0x41, ...sleb(v)];
const simd = (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm];
const load = (ptr: number, off = 0) => [...get(ptr), ...simd(0x00, 4, ...uleb(off))];
const loadAbs = (addr: number) => [...i32c(0), ...simd(0x00, 4, ...uleb(addr))];
const store = (ptr: number, off: number, value: number[]) => [...get(ptr), ...value, ...simd(0x0b, 4, ...uleb(off))];
const xor = (...xs: number[][]) => xs.slice(1).reduce((acc, x) => acc.concat(x, simd(0x51)), xs[0]!);
const and = (x: number[], y: number[]) => [...x, ...y, ...simd(0x4e)];
const vzero = simd(0x0c, ...new Array(16).fill(0));
// σ(x) = (xL ⊕ xR, xL) on 64-bit halves: low half <- bytes 8..15, high half <- bytes 8..15 ⊕ bytes 0..7.
const S_HI_HI = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
const S_0_LO = [16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7];
const sigma = (x: number[]) => xor([...x, ...x, ...simd(0x0d, ...S_HI_HI)], [...x, ...vzero, ...simd(0x0d, ...S_0_LO)]);
/** The i32 `v` in lane 0 of a zero vector (a tweak block). */
const lane0 = (v: number[]) => [...vzero, ...v, ...simd(0x1c, 0)];
/** Locals 6, 7 <- the tweak blocks of j0 and j0 + 1 (j0: parameter 5). */
const tweakPair = [...lane0(get(5)), ...set(6), ...lane0([...get(5), ...i32c(1), 0x6a]), ...set(7)];
/** All-ones if the lsb of the block computed by `v` is set, else zero. */
const lsbMask = (v: number[]) => [...i32c(0), ...v, ...simd(0x1b, 0), ...i32c(1), 0x71, 0x6b, ...simd(0x11)];

/** for (; n; n--) { body; local += step ... } with n in local `n`; `steps`: local -> step (locals in ascending order). */
function loop(n: number, body: number[], steps: Record<number, number>): number[] {
  // block; br_if 0 (n == 0); loop; body; steps; br_if 0 (n = n - 1, tee'd); end; end
  const head = [0x02, 0x40, ...get(n), 0x45, 0x0d, 0, 0x03, 0x40];
  const tail = [...get(n), ...i32c(1), 0x6b, 0x22, ...uleb(n), 0x0d, 0, 0x0b, 0x0b];
  return [
    ...head,
    ...body,
    ...Object.entries(steps).flatMap(([l, s]) => [...get(+l), ...i32c(s), 0x6a, ...set(+l)]),
    ...tail,
  ];
}

interface Fn {
  type: number;
  i32: number;
  v128: number;
  body: number[];
}

// Parameters: xor(o, a, b, n); xorc(o, a, n); pre(a, b, u, tw, n, j0); post(a, b, o, u, e, t, n);
// setbits(src, dst, bit, n); decacc(src, dec, bit, out, n, sh); tr128(cols, rows, wpc);
// encode(zero, out, vals, n, sh).
const TYPES = [[4], [3], [6], [7], [5]].map(([p]) => [0x60, ...uleb(p), ...new Array(p).fill(I32), 0]);
const load8 = [0x2d, 0, 0],
  store8 = [0x3a, 0, 0],
  load32 = [0x28, 2, 0],
  store32 = [0x36, 2, 0];
const AND = 0x71,
  OR = 0x72,
  XOR = 0x73,
  SHL = 0x74,
  SHRU = 0x76,
  ADD = 0x6a;
/** dst + (bit >> 3) */
const byteOf = (dst: number, bit: number) => [...get(dst), ...get(bit), ...i32c(3), SHRU, ADD];

const FNS: Record<string, Fn> = {
  xor: {
    type: 0,
    i32: 0,
    v128: 0,
    body: loop(3, store(0, 0, xor(load(1), load(2))), { 0: 16, 1: 16, 2: 16 }),
  },
  xorc: {
    type: 1,
    i32: 0,
    v128: 1,
    body: [...loadAbs(0), ...set(3), ...loop(2, store(0, 0, xor(load(1), get(3))), { 0: 16, 1: 16 })],
  },
  // Garbler: U0 = σ(A) ⊕ tw ⊕ j0, U1 = U0 ⊕ σ(Δ), U2 = σ(B) ⊕ tw ⊕ (j0+1), U3 = U2 ⊕ σ(Δ); 64 bytes per instance.
  // locals: 6 J0, 7 J1, 8 SD, 9 T, 10 X
  gpre: {
    type: 2,
    i32: 0,
    v128: 5,
    body: [
      ...tweakPair,
      ...loadAbs(16),
      ...set(8),
      ...loop(
        4,
        [
          ...load(3),
          ...set(9),
          ...xor(sigma(load(0)), get(9), get(6)),
          ...set(10),
          ...store(2, 0, get(10)),
          ...store(2, 16, xor(get(10), get(8))),
          ...xor(sigma(load(1)), get(9), get(7)),
          ...set(10),
          ...store(2, 32, get(10)),
          ...store(2, 48, xor(get(10), get(8))),
        ],
        { 0: 16, 1: 16, 2: 64, 3: 16 },
      ),
    ],
  },
  // Garbler after AES (E = π(U)): T_G = E0⊕E1⊕σ(Δ) ⊕ p_b Δ, T_E = E2⊕E3⊕σ(Δ) ⊕ A0,
  // W0 = (E0⊕U0) ⊕ p_a T_G ⊕ (E2⊕U2) ⊕ p_b (E2⊕E3⊕σ(Δ)).
  // locals: 7 D, 8 SD, 9 A, 10 MA, 11 MB, 12 E0, 13 E2, 14 G, 15 HX
  gpost: {
    type: 3,
    i32: 0,
    v128: 9,
    body: [
      ...loadAbs(0),
      ...set(7),
      ...loadAbs(16),
      ...set(8),
      ...loop(
        6,
        [
          ...load(0),
          ...set(9),
          ...lsbMask(get(9)),
          ...set(10),
          ...lsbMask(load(1)),
          ...set(11),
          ...load(4, 0),
          ...set(12),
          ...load(4, 32),
          ...set(13),
          ...xor(get(12), load(4, 16), get(8), and(get(11), get(7))),
          ...set(14),
          ...xor(get(13), load(4, 48), get(8)),
          ...set(15),
          ...store(5, 0, get(14)),
          ...store(5, 16, xor(get(15), get(9))),
          ...store(2, 0, xor(get(12), load(3, 0), and(get(10), get(14)), get(13), load(3, 32), and(get(11), get(15)))),
        ],
        { 0: 16, 1: 16, 2: 16, 3: 64, 4: 64, 5: 32 },
      ),
    ],
  },
  // Evaluator: U0 = σ(A) ⊕ tw ⊕ j0, U1 = σ(B) ⊕ tw ⊕ (j0+1); 32 bytes per instance. locals: 6 J0, 7 J1, 8 T
  epre: {
    type: 2,
    i32: 0,
    v128: 3,
    body: [
      ...tweakPair,
      ...loop(
        4,
        [
          ...load(3),
          ...set(8),
          ...store(2, 0, xor(sigma(load(0)), get(8), get(6))),
          ...store(2, 16, xor(sigma(load(1)), get(8), get(7))),
        ],
        { 0: 16, 1: 16, 2: 32, 3: 16 },
      ),
    ],
  },
  // Evaluator after AES: W = (E0⊕U0) ⊕ s_a T_G ⊕ (E1⊕U1) ⊕ s_b (T_E ⊕ A). locals: 7 A
  epost: {
    type: 3,
    i32: 0,
    v128: 1,
    body: [
      ...loop(
        6,
        [
          ...load(0),
          ...set(7),
          ...store(
            2,
            0,
            xor(
              load(4, 0),
              load(3, 0),
              load(4, 16),
              load(3, 16),
              and(lsbMask(get(7)), load(5, 0)),
              and(lsbMask(load(1)), xor(load(5, 16), get(7))),
            ),
          ),
        ],
        { 0: 16, 1: 16, 2: 16, 3: 32, 4: 32, 5: 32 },
      ),
    ],
  },
  // dst bit (bit + i) |= lsb(label i at src + 16 i): the garbler's decode (permute) bits.
  setbits: {
    type: 0,
    i32: 0,
    v128: 0,
    body: loop(
      3,
      [
        ...byteOf(1, 2),
        ...byteOf(1, 2),
        ...load8,
        ...get(0),
        ...load8,
        ...i32c(1),
        AND,
        ...get(2),
        ...i32c(7),
        AND,
        SHL,
        OR,
        ...store8,
      ],
      { 0: 16, 2: 1 },
    ),
  },
  // out[i] (i32) |= ((lsb(label i) ^ decode bit (bit + i)) & 1) << sh: the evaluator's output decoding.
  decacc: {
    type: 2,
    i32: 0,
    v128: 0,
    body: loop(
      4,
      [
        ...get(3),
        ...get(3),
        ...load32,
        ...get(0),
        ...load8,
        ...byteOf(1, 2),
        ...load8,
        ...get(2),
        ...i32c(7),
        AND,
        SHRU,
        XOR,
        ...i32c(1),
        AND,
        ...get(5),
        SHL,
        OR,
        ...store32,
      ],
      { 0: 16, 2: 1, 3: 4 },
    ),
  },
};

/**
 * 128 x (32·wpc) bit transpose: column i (wpc words) at cols + 4·i·wpc -> row j (4 words) at rows + 16·j.
 * Four 32x32 blocks (column groups 0..31, 32..63, 64..95, 96..127) are transposed at once, one per i32x4
 * lane, with the recursive swap network; lane W of transposed vector c is then word W of row 32V + c.
 * Locals: 3 stride, 4-7 column pointers, 8-39 the 32 vectors, 40 t.
 */
function tr128Body(): number[] {
  const v = (r: number) => 8 + r;
  const gather: number[] = [];
  for (let r = 0; r < 32; r++) {
    gather.push(...get(4), ...load32, ...simd(0x11));
    for (let w = 1; w < 4; w++) gather.push(...get(4 + w), ...load32, ...simd(0x1c, w));
    gather.push(...set(v(r)));
    for (let w = 0; w < 4; w++) gather.push(...get(4 + w), ...get(3), ADD, ...set(4 + w));
  }
  const swaps: number[] = [];
  for (const [j, m] of [
    [16, 0x0000ffff],
    [8, 0x00ff00ff],
    [4, 0x0f0f0f0f],
    [2, 0x33333333],
    [1, 0x55555555],
  ]) {
    const mask = simd(0x0c, ...Array.from({ length: 16 }, (_, q) => (m >>> (8 * (q & 3))) & 255));
    for (let k = 0; k < 32; k = (k + j + 1) & ~j) {
      swaps.push(
        ...get(v(k)),
        ...i32c(j),
        ...simd(173),
        ...get(v(k + j)),
        ...simd(0x51),
        ...mask,
        ...simd(0x4e),
        ...set(40),
        ...get(v(k)),
        ...get(40),
        ...i32c(j),
        ...simd(171),
        ...simd(0x51),
        ...set(v(k)),
        ...get(v(k + j)),
        ...get(40),
        ...simd(0x51),
        ...set(v(k + j)),
      );
    }
  }
  const stores: number[] = [];
  for (let c = 0; c < 32; c++) stores.push(...store(1, 16 * c, get(v(c))));
  return [
    ...get(2),
    ...i32c(2),
    SHL,
    ...set(3),
    ...loop(
      2,
      [
        ...get(0),
        ...set(4),
        ...get(0),
        ...get(3),
        ...i32c(5),
        SHL,
        ADD,
        ...set(5),
        ...get(0),
        ...get(3),
        ...i32c(6),
        SHL,
        ADD,
        ...set(6),
        ...get(5),
        ...get(3),
        ...i32c(6),
        SHL,
        ADD,
        ...set(7),
        ...gather,
        ...swaps,
        ...stores,
      ],
      { 0: 4, 1: 512 },
    ),
  ];
}
FNS.tr128 = { type: 1, i32: 5, v128: 33, body: tr128Body() };
// Garbler input labels: out_i = zero_i ⊕ (bit sh of vals[i] (i32)) · Δ. locals: 5 Δ
FNS.encode = {
  type: 4,
  i32: 0,
  v128: 1,
  body: [
    ...loadAbs(0),
    ...set(5),
    ...loop(
      3,
      store(
        1,
        0,
        xor(
          load(0),
          and([...i32c(0), ...get(2), ...load32, ...get(4), SHRU, ...i32c(1), AND, 0x6b, ...simd(0x11)], get(5)),
        ),
      ),
      { 0: 16, 1: 16, 2: 4 },
    ),
  ],
};

// KK13 sender hash inputs (ot/kkot.ts): for each OT row q (32 bytes) and each message i < n, with table rows
// (CI_i, CO_i) of 32 bytes: v = σ(q_hi) ⊕ (tw, 0, 0, 0) ⊕ CI_i, w = σ(q_lo) ⊕ (tw, 0, 0, 0) ⊕ CO_i; tw counts up
// from tw0 per row. Params (q, tab, v, w, cnt, n, tw0); locals: 7 k, 8 tp, 9 SH, 10 SL, 11 TW.
FNS.kkpre = {
  type: 3,
  i32: 2,
  v128: 3,
  body: loop(
    4,
    [
      ...lane0(get(6)),
      ...set(11),
      ...xor(sigma(load(0, 16)), get(11)),
      ...set(9),
      ...xor(sigma(load(0, 0)), get(11)),
      ...set(10),
      ...get(5),
      ...set(7),
      ...get(1),
      ...set(8),
      ...loop(7, [...store(2, 0, xor(get(9), load(8, 0))), ...store(3, 0, xor(get(10), load(8, 16)))], {
        2: 16,
        3: 16,
        8: 32,
      }),
    ],
    { 0: 32, 6: 1 },
  ),
};
// Between the two AES calls of the KK13 hash: v = w ⊕ σ(e ⊕ v). Params (v, e, w, n); locals: 4 H.
FNS.kkmid = {
  type: 0,
  i32: 0,
  v128: 1,
  body: loop(3, [...xor(load(1), load(0)), ...set(4), ...store(0, 0, xor(load(2), sigma(get(4))))], {
    0: 16,
    1: 16,
    2: 16,
  }),
};

// The silent OT's GGM expansion (ot/ferret.ts): per parent x, u = σ(x) ⊕ (0, 0, 0, DOMAIN_GGM) and u ⊕ (1, 0, 0, 0), the
// inputs of both children's hashes (32 bytes per parent). Params (p, u, n); locals: 3 s.
const GGM_T0 = simd(0x0c, ...[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x47, 0x47]);
const GGM_T1 = simd(0x0c, ...[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
FNS.ggmpre = {
  type: 1,
  i32: 0,
  v128: 1,
  body: loop(
    2,
    [...xor(sigma(load(0)), GGM_T0), ...set(3), ...store(1, 0, get(3)), ...store(1, 16, xor(get(3), GGM_T1))],
    {
      0: 16,
      1: 32,
    },
  ),
};

// The silent OT's LPN encoding (ot/lpn.ts): out_i ^= ⊕_{l<d} base[idx[i·d + l]] on 16-byte blocks, one v128 load and
// XOR per nonzero. Params (out, idx, base, n, d); locals: 5 l, 6 acc.
FNS.lpnenc = {
  type: 4,
  i32: 1,
  v128: 1,
  body: loop(
    3,
    [
      ...load(0),
      ...set(6),
      ...get(4),
      ...set(5),
      ...loop(
        5,
        [
          ...get(6),
          ...get(2),
          ...get(1),
          ...load32,
          ...i32c(4),
          SHL,
          ADD,
          ...simd(0x00, 4, 0),
          ...simd(0x51),
          ...set(6),
        ],
        { 1: 4 },
      ),
      ...store(0, 0, get(6)),
    ],
    { 0: 16 },
  ),
};

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const name = (s: string) => [...uleb(s.length), ...Array.from(new TextEncoder().encode(s))];

function assemble(): Uint8Array {
  const names = Object.keys(FNS);
  const code = names.map((k) => {
    const f = FNS[k];
    const locals: number[][] = [];
    if (f.i32) locals.push([...uleb(f.i32), I32]);
    if (f.v128) locals.push([...uleb(f.v128), V128]);
    const body = [...vec(locals), ...f.body, 0x0b];
    return [...uleb(body.length), ...body];
  });
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // '\0asm', version 1
    ...section(1, vec(TYPES)),
    ...section(3, vec(names.map((k) => uleb(FNS[k].type)))),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(7, vec([...names.map((k, i) => [...name(k), 0x00, ...uleb(i)]), [...name('mem'), 0x02, 0]])),
    ...section(10, vec(code)),
  ]);
}

type K4 = (o: number, a: number, b: number, n: number) => void;
type K3 = (o: number, a: number, n: number) => void;
type KPre = (a: number, b: number, u: number, tw: number, n: number, j0: number) => void;
type KPost = (a: number, b: number, o: number, u: number, e: number, t: number, n: number) => void;
type KSetBits = (src: number, dst: number, bit: number, n: number) => void;
type KDecAcc = (src: number, dec: number, bit: number, out: number, n: number, sh: number) => void;
type KTr = (cols: number, rows: number, wpc: number) => void;
type KEnc = (zero: number, out: number, vals: number, n: number, sh: number) => void;
type KKkPre = (q: number, tab: number, v: number, w: number, cnt: number, n: number, tw0: number) => void;

export interface GcKernels {
  xor: K4;
  /** o = a ⊕ Δ (the garbler's NOT). */
  xorc: K3;
  gpre: KPre;
  gpost: KPost;
  epre: KPre;
  epost: KPost;
  setbits: KSetBits;
  decacc: KDecAcc;
  tr128: KTr;
  /** Garbler input labels; Δ must be at address 0. */
  encode: KEnc;
  kkpre: KKkPre;
  kkmid: K4;
  ggmpre: K3;
  /** Byte view of the module memory (refreshed by ensure). */
  u8: Uint8Array;
  i32: Int32Array;
  /** Grows memory to at least `bytes`. */
  ensure(bytes: number): void;
}

// The project's TypeScript lib (ES2022, no DOM) has no WebAssembly typings; declare the part used here.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (mod: object, imports: object) => { exports: Record<string, unknown> };
};

let instance: GcKernels | null = null;
let lpnInstance: LpnKernel | null = null;

/** The LPN kernel in a module instance of its own: its memory holds a code's index table between rounds. */
export interface LpnKernel {
  lpnenc: (out: number, idx: number, base: number, n: number, d: number) => void;
  u8: Uint8Array;
  i32: Int32Array;
  ensure(bytes: number): void;
  /** Which index table the memory holds at offset 0 (set by the caller). */
  table: Int32Array | null;
}

function instantiate(): { ex: Record<string, unknown>; mem: WasmMemory } {
  const mod = new WebAssembly.Module(assemble());
  const ex = new WebAssembly.Instance(mod, {}).exports as Record<string, unknown> & { mem: WasmMemory };
  return { ex, mem: ex.mem };
}

/** The kernels plus byte and word views of their memory, re-made when `ensure` grows it (growing detaches views). */
function withViews<T extends object>(
  mem: WasmMemory,
  kernels: T,
): T & { u8: Uint8Array; i32: Int32Array; ensure(bytes: number): void } {
  const k = {
    ...kernels,
    u8: new Uint8Array(mem.buffer),
    i32: new Int32Array(mem.buffer),
    ensure(bytes: number) {
      const have = mem.buffer.byteLength;
      if (bytes > have) mem.grow(Math.ceil((bytes - have) / 65536));
      if (k.u8.buffer !== mem.buffer || k.u8.byteLength !== mem.buffer.byteLength) {
        k.u8 = new Uint8Array(mem.buffer);
        k.i32 = new Int32Array(mem.buffer);
      }
    },
  };
  return k;
}

export function lpnKernel(): LpnKernel {
  if (lpnInstance) return lpnInstance;
  const { ex, mem } = instantiate();
  lpnInstance = withViews(mem, { lpnenc: ex.lpnenc as LpnKernel['lpnenc'], table: null });
  return lpnInstance;
}

/** The process-wide kernel instance (garbling is synchronous, so one memory is enough). */
export function gcKernels(): GcKernels {
  if (instance) return instance;
  const { ex, mem } = instantiate();
  instance = withViews(mem, {
    xor: ex.xor as K4,
    xorc: ex.xorc as K3,
    gpre: ex.gpre as KPre,
    gpost: ex.gpost as KPost,
    epre: ex.epre as KPre,
    epost: ex.epost as KPost,
    setbits: ex.setbits as KSetBits,
    decacc: ex.decacc as KDecAcc,
    tr128: ex.tr128 as KTr,
    encode: ex.encode as KEnc,
    kkpre: ex.kkpre as KKkPre,
    kkmid: ex.kkmid as K4,
    ggmpre: ex.ggmpre as K3,
  });
  return instance;
}
