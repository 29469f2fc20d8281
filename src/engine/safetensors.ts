// The safetensors format: 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then raw little-endian data.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/fs.js';
import { type Tensor, tensor, type DType, type TypedArray } from './tensor.js';

const TO_ST: Partial<Record<DType, string>> = {
  float32: 'F32',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const FROM_ST: Record<string, { dtype: DType; bytes: number; make: (b: ArrayBuffer, n: number) => TypedArray }> = {
  F32: { dtype: 'float32', bytes: 4, make: (b, n) => new Float32Array(b, 0, n) },
  F64: { dtype: 'float64', bytes: 8, make: (b, n) => new Float64Array(b, 0, n) },
  I64: { dtype: 'int64', bytes: 8, make: (b, n) => new BigInt64Array(b, 0, n) },
  I32: { dtype: 'int32', bytes: 4, make: (b, n) => new Int32Array(b, 0, n) },
  I16: { dtype: 'int16', bytes: 2, make: (b, n) => new Int16Array(b, 0, n) },
  I8: { dtype: 'int8', bytes: 1, make: (b, n) => new Int8Array(b, 0, n) },
  U8: { dtype: 'uint8', bytes: 1, make: (b, n) => new Uint8Array(b, 0, n) },
  BOOL: { dtype: 'bool', bytes: 1, make: (b, n) => new Uint8Array(b, 0, n) },
};

/** Serialises tensors (in name order) to safetensors bytes. */
export function encodeSafetensors(
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const entries = [...(tensors instanceof Map ? tensors : Object.entries(tensors))].sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of entries) {
    const st = TO_ST[t.dtype];
    if (!st) throw new Error(`safetensors: tensor '${name}' has unsupported dtype ${t.dtype}`);
    const arr = t.toArray();
    const bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
    header[name] = { dtype: st, shape: t.shape, data_offsets: [off, off + bytes.length] };
    blobs.push(bytes);
    off += bytes.length;
  }
  return assembleSafetensors(header, blobs);
}

/** A safetensors file from its header object and the tensors' bytes in header order. */
export function assembleSafetensors(header: object, blobs: Uint8Array[]): Uint8Array {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // align data to 8 bytes, as the reference writer does
  const head = Buffer.from(json, 'utf8');
  const size = blobs.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(8 + head.length + size);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const b of blobs) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}

export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Parses safetensors bytes; `source` names the file in errors. */
export function decodeSafetensors(buf: Uint8Array, source = '<buffer>'): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new Error(`safetensors ${source}: ${msg}`);
  };
  if (buf.length < 8) fail(`file is ${buf.length} bytes, too short for the 8-byte header length`);
  const n = Number(new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true));
  if (n > buf.length - 8) fail(`header length ${n} exceeds the file (${buf.length} bytes)`);
  let header: Record<string, any>;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8'));
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + n;
  const dataLen = buf.length - dataStart;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors = new Map<string, Tensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const spec = FROM_ST[info?.dtype];
    if (!spec) fail(`tensor '${name}' has unsupported dtype ${info?.dtype}`);
    const shape = info.shape as number[];
    const [b, e] = info.data_offsets as [number, number];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      fail(`tensor '${name}' has an invalid shape`);
    const count = shape.reduce((a, d) => a * d, 1);
    if (!(b >= 0 && e >= b && e <= dataLen))
      fail(`tensor '${name}' data_offsets [${b}, ${e}] fall outside the data (${dataLen} bytes)`);
    if (e - b !== count * spec!.bytes)
      fail(
        `tensor '${name}' has ${e - b} bytes, shape ${JSON.stringify(shape)} ${info.dtype} needs ${count * spec!.bytes}`,
      );
    const copy = new Uint8Array(e - b); // aligned copy for the typed view (Buffer.slice would share the pool)
    copy.set(buf.subarray(dataStart + b, dataStart + e));
    tensors.set(name, tensor(spec!.make(copy.buffer, count), shape, spec!.dtype));
  }
  return { tensors, metadata };
}

export function loadSafetensors(path: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new Error(`safetensors ${path}: cannot read (${(e as Error).message})`);
  }
  return decodeSafetensors(buf, path);
}
