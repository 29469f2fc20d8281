// Coefficient encoding of convolutions and fully connected layers (Cheetah, Huang et al. 2022): one polynomial
// product computes a convolution, with no rotations and no Galois keys.
//
// A conv with stride s becomes a stride-1 conv by polyphase decomposition: tap (di, dj) reads phase
// (d di mod s, d dj mod s) at phase offset (floor(d di / s), floor(d dj / s)) (d = dilation), each input channel
// becomes one "phase channel" per phase that has taps (a 1x1 stride-2 conv keeps 1 of 4), and the phase images are
// ceil((H + 2 pad) / s) high. A fully connected layer is a 1x1 conv on a 1x1 image with C = its input size.
// The outputs are split into tiles of th x tw; a tile reads Hb x Wb = (th + kh' - 1) x (tw + kw' - 1) phase pixels
// (its halo included). With A = Hb Wb, an input polynomial holds Cw phase channels of one tile:
//     x(X) = sum_{c < Cw, y < Hb, x < Wb} in[c, y, x] X^(c A + y Wb + x)
// and a kernel polynomial the weights of On outputs against those Cw phase channels:
//     k(X) = sum_{o < On, c < Cw, taps} w[o, c, i, j] X^(o Cw A + O - (c A + i Wb + j)),  O = (Cw - 1) A + (kh' - 1) Wb + kw' - 1
// so that coefficient o Cw A + O + y Wb + x of x k is output (o, y, x) of the tile, for On Cw A <= n: no other
// product term lands there (within a block the input offsets and the tap offsets cannot alias, and the wrap-around
// of X^n = -1 only reaches lower positions). Output ciphertexts sum the products over the Cp / Cw input groups.
// Other coefficients hold garbage (other linear combinations of the weights): the server never sends them.
import type { ConvGeometry } from '../ringlinear.js';

/** A secret linear layer as the encoding sees it (a conv, or an fc as a 1x1 conv on a 1x1 image). */
export interface LinearGeometry {
  C: number;
  H: number;
  W: number;
  O: number;
  Ho: number;
  Wo: number;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
  dilation: number;
  groups: number;
}

export function convGeometry(g: ConvGeometry): LinearGeometry {
  const [C, H, W] = g.inShape,
    [O, Ho, Wo] = g.outShape;
  return {
    C,
    H,
    W,
    O,
    Ho,
    Wo,
    kh: g.kernel,
    kw: g.kernel,
    stride: g.stride,
    pad: g.padding,
    dilation: g.dilation,
    groups: g.groups,
  };
}

export function fcGeometry(inSize: number, outSize: number): LinearGeometry {
  return { C: inSize, H: 1, W: 1, O: outSize, Ho: 1, Wo: 1, kh: 1, kw: 1, stride: 1, pad: 0, dilation: 1, groups: 1 };
}

/** The packing choice of a layer (chosen by the client's cost model, checked by the server). */
export interface Packing {
  /** Outputs per tile (rows, columns). */
  th: number;
  tw: number;
  /** Phase channels per input polynomial, outputs per kernel polynomial. */
  cw: number;
  on: number;
}

interface Tap {
  di: number;
  dj: number;
  phase: number;
  pi: number;
  pj: number;
}

/** Bound on sum over one response's products of ||k||_1, in units of the largest |weight|: on outputs x their taps. */
export const kernelTaps = (g: LinearGeometry, on: number) => Math.min(on, g.O) * (g.C / g.groups) * g.kh * g.kw;

/** Whether input group ig (cw phase channels) and output group og (on outputs) share a conv group. */
function isLive(pp: Polyphase, cw: number, on: number, ig: number, og: number): boolean {
  const { g } = pp,
    nph = pp.phases.length,
    cin = g.C / g.groups,
    cout = g.O / g.groups;
  if (g.groups === 1) return true;
  const i0 = Math.floor(Math.floor((ig * cw) / nph) / cin),
    i1 = Math.floor(Math.floor((Math.min(pp.cp, (ig + 1) * cw) - 1) / nph) / cin);
  const o0 = Math.floor((og * on) / cout),
    o1 = Math.floor((Math.min(g.O, (og + 1) * on) - 1) / cout);
  return i0 <= o1 && o0 <= i1;
}

function liveCount(pp: Polyphase, cw: number, on: number): number {
  const G = Math.ceil(pp.cp / cw),
    OG = Math.ceil(pp.g.O / on);
  if (pp.g.groups === 1) return G * OG;
  let k = 0;
  for (let ig = 0; ig < G; ig++) for (let og = 0; og < OG; og++) if (isLive(pp, cw, on, ig, og)) k++;
  return k;
}

/** The polyphase view of a geometry. */
export interface Polyphase {
  g: LinearGeometry;
  /** Phases with taps, as (row, column) offsets. */
  phases: [number, number][];
  taps: Tap[];
  /** Taps per phase. */
  tapsOf: Tap[][];
  /** Phase channels (C x phases, channel-major), phase image size, phase kernel extent. */
  cp: number;
  hp: number;
  wp: number;
  kh: number;
  kw: number;
}

export function polyphase(g: LinearGeometry, what: string): Polyphase {
  const { stride: s, dilation: d } = g;
  for (const [k, v] of Object.entries(g)) {
    if (!Number.isInteger(v) || v < (k === 'pad' ? 0 : 1))
      throw new Error(`${what}: geometry ${k} = ${v} is not a ${k === 'pad' ? 'non-negative' : 'positive'} integer`);
  }
  if (g.C % g.groups || g.O % g.groups)
    throw new Error(`${what}: ${g.C} input / ${g.O} output channels do not split into ${g.groups} groups`);
  const hpad = g.H + 2 * g.pad,
    wpad = g.W + 2 * g.pad;
  const ho = Math.floor((hpad - d * (g.kh - 1) - 1) / s) + 1,
    wo = Math.floor((wpad - d * (g.kw - 1) - 1) / s) + 1;
  if (ho !== g.Ho || wo !== g.Wo)
    throw new Error(`${what}: output ${g.Ho}x${g.Wo} differs from the geometry's ${ho}x${wo}`);
  const phaseId = new Map<number, number>(),
    phases: [number, number][] = [],
    taps: Tap[] = [];
  for (let di = 0; di < g.kh; di++) {
    for (let dj = 0; dj < g.kw; dj++) {
      const a = (d * di) % s,
        b = (d * dj) % s,
        key = a * s + b;
      if (!phaseId.has(key)) {
        phaseId.set(key, phases.length);
        phases.push([a, b]);
      }
      taps.push({ di, dj, phase: phaseId.get(key)!, pi: Math.floor((d * di) / s), pj: Math.floor((d * dj) / s) });
    }
  }
  const tapsOf = phases.map((_, p) => taps.filter((t) => t.phase === p));
  return {
    g,
    phases,
    taps,
    tapsOf,
    cp: g.C * phases.length,
    hp: Math.ceil(hpad / s),
    wp: Math.ceil(wpad / s),
    kh: Math.max(...taps.map((t) => t.pi)) + 1,
    kw: Math.max(...taps.map((t) => t.pj)) + 1,
  };
}

/** Positions and sources of one polynomial: coefficient idx[j] holds element src[j] (an input or output index). */
export interface Placement {
  idx: Uint32Array;
  src: Uint32Array;
}

/** A layer's encoding for a packing: everything both parties derive from the public geometry. */
export class ConvLayout {
  readonly pp: Polyphase;
  readonly hb: number;
  readonly wb: number;
  readonly area: number;
  readonly tilesY: number;
  readonly tilesX: number;
  readonly tiles: number;
  /** Input groups (cw phase channels each) and output groups (on outputs each). */
  readonly inGroups: number;
  readonly outGroups: number;
  /** Whether kernel polynomial (input group, output group) has any weight (grouped convs leave some empty). */
  readonly live: boolean[][];
  /** Public bound on sum over one response's products of ||k||_1 in weight units (multiply by the largest |w|). */
  readonly kernelTaps: number;
  private readonly offset: number;

  constructor(
    readonly g: LinearGeometry,
    readonly pk: Packing,
    readonly n: number,
    what: string,
  ) {
    this.pp = polyphase(g, what);
    const { th, tw, cw, on } = pk;
    for (const [k, v] of Object.entries(pk))
      if (!Number.isInteger(v) || v < 1) throw new Error(`${what}: packing ${k} = ${v} is not a positive integer`);
    if (th > g.Ho || tw > g.Wo || cw > this.pp.cp || on > g.O)
      throw new Error(
        `${what}: packing ${JSON.stringify(pk)} exceeds the layer (${g.Ho}x${g.Wo} outputs, ${this.pp.cp} phase channels, ${g.O} outputs)`,
      );
    this.hb = th + this.pp.kh - 1;
    this.wb = tw + this.pp.kw - 1;
    this.area = this.hb * this.wb;
    if (on * cw * this.area > n)
      throw new Error(
        `${what}: packing ${JSON.stringify(pk)} needs ${on * cw * this.area} coefficients, the ring has ${n}`,
      );
    this.tilesY = Math.ceil(g.Ho / th);
    this.tilesX = Math.ceil(g.Wo / tw);
    this.tiles = this.tilesY * this.tilesX;
    this.inGroups = Math.ceil(this.pp.cp / cw);
    this.outGroups = Math.ceil(g.O / on);
    this.offset = (cw - 1) * this.area + (this.pp.kh - 1) * this.wb + this.pp.kw - 1;
    this.live = Array.from({ length: this.inGroups }, (_, ig) =>
      Array.from({ length: this.outGroups }, (_, og) => isLive(this.pp, cw, on, ig, og)),
    );
    this.kernelTaps = kernelTaps(g, on);
  }

  /** Upload ciphertexts (tile-major, then input group) and response ciphertexts (tile-major, then output group). */
  get uploads(): number {
    return this.tiles * this.inGroups;
  }
  get responses(): number {
    return this.tiles * this.outGroups;
  }

  private tileOrigin(t: number): [number, number] {
    return [Math.floor(t / this.tilesX) * this.pk.th, (t % this.tilesX) * this.pk.tw];
  }

  /** Input polynomial (tile t, input group ig): coefficient positions and the input elements (C x H x W index) they hold. */
  input(t: number, ig: number): Placement {
    const { g, pp } = this,
      nph = pp.phases.length,
      s = g.stride;
    const [y0, x0] = this.tileOrigin(t);
    const idx: number[] = [],
      src: number[] = [];
    for (let cl = 0; cl < this.pk.cw; cl++) {
      const cph = ig * this.pk.cw + cl;
      if (cph >= pp.cp) break;
      const c = Math.floor(cph / nph),
        [a, b] = pp.phases[cph % nph]!;
      for (let yy = 0; yy < this.hb; yy++) {
        const y = s * (y0 + yy) + a - g.pad;
        if (y < 0 || y >= g.H) continue;
        for (let xx = 0; xx < this.wb; xx++) {
          const x = s * (x0 + xx) + b - g.pad;
          if (x < 0 || x >= g.W) continue;
          idx.push(cl * this.area + yy * this.wb + xx);
          src.push((c * g.H + y) * g.W + x);
        }
      }
    }
    return { idx: Uint32Array.from(idx), src: Uint32Array.from(src) };
  }

  /** Response (tile t, output group og): the kept coefficient positions and the outputs (O x Ho x Wo index) there. */
  output(t: number, og: number): Placement {
    const { g } = this;
    const [y0, x0] = this.tileOrigin(t);
    const idx: number[] = [],
      src: number[] = [];
    for (let ol = 0; ol < this.pk.on; ol++) {
      const o = og * this.pk.on + ol;
      if (o >= g.O) break;
      for (let y = 0; y < this.pk.th && y0 + y < g.Ho; y++) {
        for (let x = 0; x < this.pk.tw && x0 + x < g.Wo; x++) {
          idx.push(ol * this.pk.cw * this.area + this.offset + y * this.wb + x);
          src.push((o * g.Ho + y0 + y) * g.Wo + x0 + x);
        }
      }
    }
    return { idx: Uint32Array.from(idx), src: Uint32Array.from(src) };
  }

  /**
   * Kernel polynomial (input group ig, output group og) as small integers, from weights [O, C / groups, kh, kw]
   * (row-major), into `out` (n zeros, e.g. a view of the engine's memory); null when it has no weight.
   */
  kernel(ig: number, og: number, w: ArrayLike<number>, out: Int32Array = new Int32Array(this.n)): Int32Array | null {
    if (!this.live[ig]![og]) return null;
    const { g, pp, pk } = this,
      nph = pp.phases.length,
      cin = g.C / g.groups,
      cout = g.O / g.groups;
    for (let ol = 0; ol < pk.on; ol++) {
      const o = og * pk.on + ol;
      if (o >= g.O) break;
      for (let cl = 0; cl < pk.cw; cl++) {
        const cph = ig * pk.cw + cl;
        if (cph >= pp.cp) break;
        const c = Math.floor(cph / nph);
        if (Math.floor(c / cin) !== Math.floor(o / cout)) continue;
        const base = (o * cin + (c % cin)) * g.kh * g.kw;
        for (const tp of pp.tapsOf[cph % nph]!) {
          out[ol * pk.cw * this.area + this.offset - (cl * this.area + tp.pi * this.wb + tp.pj)] =
            w[base + tp.di * g.kw + tp.dj]!;
        }
      }
    }
    return out;
  }
}

/** Unit costs of the cost model (seconds on this project's 2-core reference machine, idle; bytes/s of the link). */
export interface PackingCostModel {
  ntt: number;
  /** One input group's products for one prime of one response (both components). */
  dotTerm: number;
  /** Server work per response besides its products (re-randomisation NTTs, inverse NTTs, switching), client decryption. */
  response: number;
  /** Client work per upload (encryption) and server work per upload (expanding a). */
  upload: number;
  bandwidth: number;
  /**
   * Largest server memory for one layer's input ciphertexts (bytes; c0 and a, L x n words each). The server refuses
   * packings above it, and its frame limit for uploads follows from it (64 MiB: <= 170 ciphertexts, 31 MB).
   */
  memory: number;
}

export const DEFAULT_COST: PackingCostModel = {
  ntt: 25e-6,
  dotTerm: 3e-6,
  response: 1.2e-3,
  upload: 0.6e-3,
  bandwidth: 30e6,
  memory: 64 * 2 ** 20,
};

export interface PackingCost {
  pk: Packing;
  uploads: number;
  responses: number;
  kernelPolys: number;
  products: number;
  bytes: number;
  seconds: number;
  cost: number;
}

/** Bytes of one upload (its c0: L primes x n residues of 30 bits) and of one response with `kept` coefficients. */
export const uploadBytes = (n: number, primes: number) => Math.ceil((n * primes * 30) / 8);
export const responseBytes = (n: number, c1Bits: number, c0Bits: number, kept: number) =>
  Math.ceil((n * c1Bits) / 8) + Math.ceil((kept * c0Bits) / 8);

/**
 * The packing with the least estimated cost (server and client seconds + bytes / bandwidth) among tilings (one per
 * tile count), input group sizes and output group sizes (the largest that fits, and for grouped convs also the
 * sizes aligned with the groups), subject to `fits` (e.g. the noise budget).
 */
export function choosePacking(
  g: LinearGeometry,
  n: number,
  primes: number,
  c1Bits: number,
  c0Bits: number,
  fits: (kernelTaps: number) => boolean,
  cost: PackingCostModel = DEFAULT_COST,
  what = 'layer',
): PackingCost {
  const pp = polyphase(g, what);
  const sizes = (total: number) => {
    const out = new Set<number>();
    for (let k = 1; k <= total; k++) out.add(Math.ceil(total / k));
    return [...out];
  };
  let best: PackingCost | null = null;
  const outputs = g.O * g.Ho * g.Wo;
  for (const th of sizes(g.Ho)) {
    for (const tw of sizes(g.Wo)) {
      const area = (th + pp.kh - 1) * (tw + pp.kw - 1);
      if (area > n) continue;
      const tiles = Math.ceil(g.Ho / th) * Math.ceil(g.Wo / tw);
      for (let cw = 1; cw <= Math.min(pp.cp, Math.floor(n / area)); cw++) {
        const maxOn = Math.min(g.O, Math.floor(n / (cw * area)));
        const ons = new Set([maxOn]);
        if (g.groups > 1)
          for (const o of [g.O / g.groups, cw / pp.phases.length])
            if (Number.isInteger(o) && o >= 1 && o <= maxOn) ons.add(o);
        for (const on of ons) {
          const G = Math.ceil(pp.cp / cw),
            OG = Math.ceil(g.O / on);
          const uploads = tiles * G,
            responses = tiles * OG;
          if (2 * uploads * 4 * primes * n > cost.memory) continue;
          const kernelPolys = liveCount(pp, cw, on),
            products = tiles * kernelPolys;
          const bytes =
            uploads * uploadBytes(n, primes) +
            responses * responseBytes(n, c1Bits, 0, 0) +
            Math.ceil((outputs * c0Bits) / 8);
          const seconds =
            kernelPolys * primes * cost.ntt +
            products * primes * cost.dotTerm +
            responses * cost.response +
            uploads * cost.upload;
          const c = seconds + bytes / cost.bandwidth;
          if ((best && c >= best.cost) || !fits(kernelTaps(g, on))) continue;
          best = { pk: { th, tw, cw, on }, uploads, responses, kernelPolys, products, bytes, seconds, cost: c };
        }
      }
    }
  }
  if (!best) throw new Error(`${what}: no packing fits the ring (n = ${n}) and the noise budget`);
  return best;
}
