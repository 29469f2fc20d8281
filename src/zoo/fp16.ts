// fp16 storage of zoo weights: a safetensors file's F32 tensors rewritten as F16 (round to nearest, ties to even)
// and back. Works on the bytes alone (header + data), so other dtypes (e.g. BN's I64 counters) pass through as they are.
import { assembleSafetensors } from '../engine/safetensors.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of a float32 value, rounded to nearest even; overflow gives infinity. */
export function toHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1),
      half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is still the right value
  return sign | h;
}

export function fromHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f,
    m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

interface Parsed {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  metadata?: Record<string, string>;
  data: Uint8Array;
}

function parse(buf: Uint8Array, source: string): Parsed {
  const fail = (m: string): never => {
    throw new Error(`safetensors ${source}: ${m}`);
  };
  if (buf.length < 8) fail('too short for the header length');
  const n = Number(new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true));
  if (n > buf.length - 8) fail(`header length ${n} exceeds the file (${buf.length} bytes)`);
  let all: Record<string, any>;
  try {
    all = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8'));
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  const { __metadata__: metadata, ...header } = all;
  const data = buf.subarray(8 + n);
  for (const [name, t] of Object.entries(header)) {
    const [b, e] = t?.data_offsets ?? [];
    if (!(Number.isInteger(b) && Number.isInteger(e) && b >= 0 && e >= b && e <= data.length))
      fail(`tensor '${name}' has data_offsets outside the data`);
  }
  return { header, metadata, data };
}

/** Rewrites every tensor of dtype `from` through `convert` (element bytes in -> element bytes out). */
function rewrite(
  buf: Uint8Array,
  source: string,
  from: string,
  to: string,
  convert: (src: Uint8Array) => Uint8Array,
  storage: string,
): Uint8Array {
  const p = parse(buf, source);
  const names = Object.keys(p.header).sort((a, b) => p.header[a]!.data_offsets[0] - p.header[b]!.data_offsets[0]);
  const header: Record<string, unknown> = {};
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const name of names) {
    const t = p.header[name]!;
    const raw = p.data.subarray(t.data_offsets[0], t.data_offsets[1]);
    const out = t.dtype === from ? convert(raw) : raw;
    header[name] = { dtype: t.dtype === from ? to : t.dtype, shape: t.shape, data_offsets: [off, off + out.length] };
    blobs.push(out);
    off += out.length;
  }
  const meta = { ...(p.metadata ?? {}), storage };
  return assembleSafetensors({ __metadata__: meta, ...header }, blobs);
}

/** F32 tensors -> F16. */
export function safetensorsToFp16(buf: Uint8Array, source = '<buffer>'): Uint8Array {
  return rewrite(
    buf,
    source,
    'F32',
    'F16',
    (raw) => {
      const n = raw.length / 4,
        v = new DataView(raw.buffer, raw.byteOffset, raw.length);
      const out = new Uint8Array(2 * n),
        w = new DataView(out.buffer);
      for (let i = 0; i < n; i++) w.setUint16(2 * i, toHalf(v.getFloat32(4 * i, true)), true);
      return out;
    },
    'fp16',
  );
}

/** F16 tensors -> F32 (exact: every half is a float). A file without F16 tensors comes back as it is. */
export function safetensorsToFp32(buf: Uint8Array, source = '<buffer>'): Uint8Array {
  const p = parse(buf, source);
  if (!Object.values(p.header).some((t) => t.dtype === 'F16')) return buf;
  return rewrite(
    buf,
    source,
    'F16',
    'F32',
    (raw) => {
      const n = raw.length / 2,
        v = new DataView(raw.buffer, raw.byteOffset, raw.length);
      const out = new Uint8Array(4 * n),
        w = new DataView(out.buffer);
      for (let i = 0; i < n; i++) w.setFloat32(4 * i, fromHalf(v.getUint16(2 * i, true)), true);
      return out;
    },
    'fp32',
  );
}
