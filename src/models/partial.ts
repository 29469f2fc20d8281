// Partial ReLU sites: a subset of a site's activation elements stays ReLU, the rest pass through. Pure code (no
// Node API), so a browser client can read masks too.

/** The kept elements of a site: flat indices into its per-image C*H*W activation, sorted and unique. */
export interface PartialSite {
  /** Per-image activation shape [C, H, W]. */
  shape: number[];
  elements: Uint32Array;
}

/**
 * The kept elements in JSON: `relus` of them, as whole channels (every position) or as `bitmap` (base64 of one bit
 * per element in flat C*H*W order, bit i in byte i >> 3 at position i & 7, least significant first; unused high
 * bits of the last byte are 0). A PI plan's partial relu op carries this form as is (its shape is the op's).
 */
export type KeptDocument = { relus: number; channels: number[] } | { relus: number; bitmap: string };

/** The JSON form of a partial site in a mask file: its shape and its kept elements. */
export type PartialDocument = KeptDocument & { shape: number[] };

export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The kept elements as a 0/1 byte per element. */
export function keptFlags(p: PartialSite): Uint8Array {
  const f = new Uint8Array(numelOf(p.shape));
  for (const i of p.elements) f[i] = 1;
  return f;
}

/** Sorted unique element indices from flags (non-zero = kept). */
export function elementsOf(flags: ArrayLike<number>): Uint32Array {
  let n = 0;
  for (let i = 0; i < flags.length; i++) if (flags[i]) n++;
  const out = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < flags.length; i++) if (flags[i]) out[k++] = i;
  return out;
}

/** The whole channels a partial site keeps, or null when some channel is only partly kept. */
export function wholeChannels(p: PartialSite): number[] | null {
  const [c, h, w] = p.shape as [number, number, number];
  const plane = h * w;
  const count = new Uint32Array(c);
  for (const i of p.elements) count[Math.floor(i / plane)]!++;
  const out: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    if (count[ch] === plane) out.push(ch);
    else if (count[ch] !== 0) return null;
  }
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: string, where: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new Error(`${where}: 'bitmap' is not base64`);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The JSON form: a channel list when the kept elements are whole channels, a bitmap otherwise. */
export function encodePartial(p: PartialSite): PartialDocument {
  const channels = wholeChannels(p);
  if (channels) return { shape: [...p.shape], relus: p.elements.length, channels };
  const bytes = new Uint8Array(Math.ceil(numelOf(p.shape) / 8));
  for (const i of p.elements) bytes[i >> 3]! |= 1 << (i & 7);
  return { shape: [...p.shape], relus: p.elements.length, bitmap: toBase64(bytes) };
}

/**
 * Reads and checks the JSON form of a partial site (`where` names the site in errors): the shape must be the
 * network's (`expected`), channel indices integers in range without repeats, the bitmap exactly C*H*W bits long,
 * and `relus` the count they give.
 */
export function decodePartial(doc: unknown, expected: readonly number[], where: string): PartialSite {
  const d = doc as { shape?: unknown; relus?: unknown; channels?: unknown; bitmap?: unknown } | null;
  if (!d || typeof d !== 'object' || Array.isArray(d))
    throw new Error(`${where}: expected an object { shape, relus, channels | bitmap }`);
  if (!Array.isArray(d.shape) || !d.shape.every((v) => Number.isInteger(v) && v > 0))
    throw new Error(`${where}: field 'shape' must be the site's [C, H, W] as positive integers`);
  if (d.shape.join() !== expected.join())
    throw new Error(
      `${where}: shape [${d.shape.join(', ')}] does not match the network's site, which is [${expected.join(', ')}]`,
    );
  if ((d.channels === undefined) === (d.bitmap === undefined))
    throw new Error(`${where}: give exactly one of 'channels' or 'bitmap'`);
  const shape = [...expected];
  const numel = numelOf(shape);
  let elements: Uint32Array;
  if (d.channels !== undefined) {
    const c = shape[0]!,
      plane = numel / c;
    if (!Array.isArray(d.channels)) throw new Error(`${where}: field 'channels' must be an array of channel indices`);
    const bad = d.channels.filter((v) => !Number.isInteger(v) || v < 0 || v >= c);
    if (bad.length)
      throw new Error(
        `${where}: channel index ${bad.slice(0, 5).join(', ')} out of range (the site has ${c} channels, 0..${c - 1})`,
      );
    const seen = new Set<number>();
    for (const v of d.channels) {
      if (seen.has(v)) throw new Error(`${where}: channel ${v} is listed twice`);
      seen.add(v);
    }
    const flags = new Uint8Array(numel);
    for (const ch of seen) flags.fill(1, ch * plane, (ch + 1) * plane);
    elements = elementsOf(flags);
  } else {
    if (typeof d.bitmap !== 'string') throw new Error(`${where}: field 'bitmap' must be a base64 string`);
    const bytes = fromBase64(d.bitmap, where);
    const want = Math.ceil(numel / 8);
    if (bytes.length !== want)
      throw new Error(`${where}: bitmap holds ${bytes.length} bytes, the site's ${numel} elements need ${want}`);
    if (numel % 8 && bytes[want - 1]! >> (numel % 8))
      throw new Error(`${where}: bitmap sets bits past the site's ${numel} elements`);
    const flags = new Uint8Array(numel);
    for (let i = 0; i < numel; i++) flags[i] = (bytes[i >> 3]! >> (i & 7)) & 1;
    elements = elementsOf(flags);
  }
  if (d.relus !== elements.length)
    throw new Error(
      `${where}: 'relus' is ${JSON.stringify(d.relus)} but the ${d.channels !== undefined ? 'channels' : 'bitmap'} keep ${elements.length} elements`,
    );
  return { shape, elements };
}
