// PyTorch's torch.save zip format read without Python: a strict unpickler for state dicts of tensors. It knows the
// opcodes a (nested) dict of tensors needs and a whitelist of globals (OrderedDict, the tensor rebuilders, the typed
// storages); anything else, e.g. `os.system` in a crafted file, is refused by name before anything is built.
import { unzipSync } from 'fflate';

/** A tensor read from a file: float32 values, contiguous, with the dtype it was stored in. */
export interface RawTensor {
  shape: number[];
  data: Float32Array;
  dtype: string;
}

/** A storage persisted in the zip's data/ folder, decoded on first use. */
interface Storage {
  kind: 'storage';
  dtype: string;
  key: string;
}
interface Global {
  kind: 'global';
  name: string;
}
/** The OrderedDict a state dict is made of; its `_metadata` (BUILD state) is ignored. */
type Dict = Map<string | number, unknown>;

const STORAGES: Record<string, { dtype: string; bytes: number; read: (v: DataView, o: number) => number }> = {
  FloatStorage: { dtype: 'float32', bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  DoubleStorage: { dtype: 'float64', bytes: 8, read: (v, o) => v.getFloat64(o, true) },
  HalfStorage: { dtype: 'float16', bytes: 2, read: (v, o) => half(v.getUint16(o, true)) },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2, read: (v, o) => bf16(v.getUint16(o, true)) },
  LongStorage: { dtype: 'int64', bytes: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
  IntStorage: { dtype: 'int32', bytes: 4, read: (v, o) => v.getInt32(o, true) },
  ShortStorage: { dtype: 'int16', bytes: 2, read: (v, o) => v.getInt16(o, true) },
  CharStorage: { dtype: 'int8', bytes: 1, read: (v, o) => v.getInt8(o) },
  ByteStorage: { dtype: 'uint8', bytes: 1, read: (v, o) => v.getUint8(o) },
  BoolStorage: { dtype: 'bool', bytes: 1, read: (v, o) => v.getUint8(o) },
};

const GLOBALS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  ...Object.keys(STORAGES).map((s) => `torch.${s}`),
]);
const allowed = () => [...GLOBALS].join(', ');

function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1,
    e = (h >> 10) & 0x1f,
    m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
const bf16Buf = new DataView(new ArrayBuffer(4));
function bf16(b: number): number {
  bf16Buf.setUint32(0, b << 16);
  return bf16Buf.getFloat32(0);
}

/**
 * Runs a pickle (protocols 2-5) that may only build dicts, lists, tuples, scalars, strings and the whitelisted
 * globals. `persistent(pid)` resolves BINPERSID ids. Throws naming the file and the first thing it refuses.
 */
export function unpickle(bytes: Uint8Array, source: string, persistent: (pid: unknown) => unknown): unknown {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder('utf-8', { fatal: true });
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const need = (n: number) => {
    if (p + n > bytes.length) fail(`pickle ends early (truncated file?) at byte ${p} of ${bytes.length}`);
  };
  const take = (n: number) => {
    need(n);
    p += n;
    return bytes.subarray(p - n, p);
  };
  const u8 = () => take(1)[0]!;
  const u16 = () => view.getUint16(take(2).byteOffset - bytes.byteOffset, true);
  const u32 = () => view.getUint32(take(4).byteOffset - bytes.byteOffset, true);
  const i32 = () => view.getInt32(take(4).byteOffset - bytes.byteOffset, true);
  const line = () => {
    const e = bytes.indexOf(10, p);
    if (e < 0) fail('pickle ends early inside a GLOBAL');
    const s = new TextDecoder('latin1').decode(bytes.subarray(p, e));
    p = e + 1;
    return s;
  };
  const pop = () => (stack.length ? stack.pop() : fail(`pickle stack underflow at byte ${p}`));
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) fail(`pickle has no MARK at byte ${p}`);
    return stack.splice(m!);
  };
  const top = () => (stack.length ? stack[stack.length - 1] : fail(`pickle stack underflow at byte ${p}`));
  const global = (module: string, name: string): Global => {
    const full = `${module}.${name}`;
    if (!GLOBALS.has(full))
      fail(
        `pickle refers to the global '${full}', which a state dict of tensors does not need; only these are allowed: ${allowed()} (save model.state_dict(), not the model or other objects)`,
      );
    return { kind: 'global', name: full };
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (!(d instanceof Map)) return fail('SETITEM(S) on something that is not a dict');
    for (let i = 0; i + 1 < kv.length; i += 2) {
      const k = kv[i];
      if (typeof k !== 'string' && typeof k !== 'number') fail(`dict key of type ${typeof k}`);
      (d as Dict).set(k as string | number, kv[i + 1]);
    }
  };
  const reduce = (f: unknown, args: unknown): unknown => {
    const g = f as Global;
    if (g?.kind !== 'global' || !Array.isArray(args)) return fail('REDUCE of something that is not an allowed global');
    switch (g.name) {
      case 'collections.OrderedDict':
        if (args.length) fail('OrderedDict with constructor arguments');
        return new Map() as Dict;
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride] = args as [Storage, number, number[], number[]];
        if ((storage as Storage)?.kind !== 'storage') fail('_rebuild_tensor_v2 without a storage');
        return { kind: 'tensor', storage, offset, size, stride };
      }
      case 'torch._utils._rebuild_parameter':
        return args[0];
      default:
        return fail(`the global '${g.name}' cannot be called`);
    }
  };

  for (;;) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`pickle stops with ${stack.length} values on the stack`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map() as Dict);
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop(),
          b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x8a: {
        // LONG1
        const n = u8();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) fail('integer out of range');
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(p, false));
        p += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(dec.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(dec.decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(new TextDecoder('latin1').decode(take(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(new TextDecoder('latin1').decode(take(u8())));
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop(),
          module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(`pickle reads memo ${k}, which was never stored`);
        stack.push(memo.get(k));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(reduce(pop(), args));
        break;
      }
      case 0x62: {
        // BUILD: only an OrderedDict's attribute dict (state_dict's _metadata), which is dropped
        const state = pop();
        if (!(top() instanceof Map) || !(state instanceof Map || state === null))
          fail('BUILD on something other than an OrderedDict');
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop(),
          k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail('APPEND to something that is not a list');
        (l as unknown[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const vs = popMark();
        const l = top();
        if (!Array.isArray(l)) fail('APPENDS to something that is not a list');
        (l as unknown[]).push(...vs);
        break;
      }
      default:
        fail(
          `pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at} is not allowed (a state dict of tensors does not need it)`,
        );
    }
  }
}

interface TensorRef {
  kind: 'tensor';
  storage: Storage;
  offset: number;
  size: number[];
  stride: number[];
}

/**
 * Reads a torch.save zip (PyTorch >= 1.6) holding a state dict, or a checkpoint dict with one under `state_dict`
 * or `model`. Returns the tensors by key, as float32 (the storage dtype is kept in `dtype`).
 */
export function readTorchZip(bytes: Uint8Array, source: string): Map<string, RawTensor> {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (bytes[0] === 0x80 && bytes[1] !== undefined && bytes[1] <= 5)
    fail(
      "this is the legacy torch.save format (PyTorch < 1.6 or _use_new_zipfile_serialization=False); re-save with torch.save(model.state_dict(), 'x.pth') in a current PyTorch",
    );
  if (!(bytes[0] === 0x50 && bytes[1] === 0x4b))
    fail('not a torch.save zip file (no zip signature); supported: .pt/.pth from torch.save, .safetensors, .onnx');
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (e) {
    return fail(`the zip archive cannot be read (truncated or corrupt file?): ${(e as Error).message}`);
  }
  const pkl = Object.keys(files).find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) return fail(`no <name>/data.pkl in the zip (entries: ${Object.keys(files).slice(0, 8).join(', ')})`);
  const prefix = pkl.slice(0, -'data.pkl'.length);
  const order = files[`${prefix}byteorder`];
  if (order && new TextDecoder().decode(order).trim() !== 'little')
    fail(`byte order '${new TextDecoder().decode(order)}' is not supported (only little-endian)`);
  const root = unpickle(files[pkl]!, `${source} (${pkl})`, (pid) => {
    const t = pid as unknown[];
    const g = t?.[1] as Global;
    if (!Array.isArray(t) || t[0] !== 'storage' || g?.kind !== 'global' || typeof t[2] !== 'string')
      return fail(`${pkl}: persistent id ${JSON.stringify(t)} is not a ('storage', type, key, ...) tuple`);
    const dtype = g.name.slice('torch.'.length);
    if (!g.name.startsWith('torch.') || !STORAGES[dtype])
      fail(`${pkl}: storage type '${g.name}' is not one of ${Object.keys(STORAGES).join(', ')}`);
    return { kind: 'storage', dtype, key: t[2] as string } satisfies Storage;
  });
  const decoded = new Map<string, { view: DataView; n: number }>();
  const storage = (s: Storage) => {
    let d = decoded.get(s.key);
    if (!d) {
      const raw = files[`${prefix}data/${s.key}`];
      if (!raw) return fail(`storage '${s.key}' (${prefix}data/${s.key}) is missing from the zip`);
      const st = STORAGES[s.dtype]!;
      if (raw.length % st.bytes) fail(`storage '${s.key}' has ${raw.length} bytes, not a multiple of ${st.bytes}`);
      d = { view: new DataView(raw.buffer, raw.byteOffset, raw.byteLength), n: raw.length / st.bytes };
      decoded.set(s.key, d);
    }
    return d;
  };
  const materialise = (name: string, r: TensorRef): RawTensor => {
    const st = STORAGES[r.storage.dtype]!;
    const { view, n } = storage(r.storage);
    const size = r.size,
      stride = r.stride;
    if (!Array.isArray(size) || !Array.isArray(stride) || size.length !== stride.length)
      fail(`tensor '${name}': size/stride are not matching tuples`);
    if (![...size, ...stride, r.offset].every((v) => Number.isInteger(v) && v >= 0))
      fail(`tensor '${name}': size [${size}], stride [${stride}], offset ${r.offset} must be non-negative integers`);
    const count = size.reduce((a, b) => a * b, 1);
    if (count > n) fail(`tensor '${name}' has ${count} elements, more than its storage (${n})`);
    let contiguous = true;
    for (let d = size.length - 1, step = 1; d >= 0; step *= size[d]!, d--)
      if (size[d]! > 1 && stride[d] !== step) contiguous = false;
    if (contiguous && st.dtype === 'float32' && r.offset >= 0 && r.offset + count <= n) {
      const bytes = new Uint8Array(view.buffer, view.byteOffset + 4 * r.offset, 4 * count).slice();
      return { shape: [...size], data: new Float32Array(bytes.buffer), dtype: st.dtype };
    }
    const data = new Float32Array(count);
    const idx = new Array<number>(size.length).fill(0);
    for (let i = 0; i < count; i++) {
      let off = r.offset;
      for (let d = 0; d < size.length; d++) off += idx[d]! * stride[d]!;
      if (off < 0 || off >= n) fail(`tensor '${name}' reads element ${off} of a ${n}-element storage`);
      data[i] = st.read(view, off * st.bytes);
      for (let d = size.length - 1; d >= 0; d--) {
        if (++idx[d]! < size[d]!) break;
        idx[d] = 0;
      }
    }
    return { shape: [...size], data, dtype: st.dtype };
  };
  const isTensor = (v: unknown): v is TensorRef => (v as TensorRef)?.kind === 'tensor';
  const tensorsOf = (d: unknown): Map<string, TensorRef> | null => {
    if (!(d instanceof Map) || !d.size) return null;
    for (const v of d.values()) if (!isTensor(v)) return null;
    return d as Map<string, TensorRef>;
  };
  let sd = tensorsOf(root);
  if (!sd && root instanceof Map)
    for (const k of ['state_dict', 'model', 'model_state_dict', 'net']) if ((sd = tensorsOf(root.get(k)))) break;
  if (!sd)
    return fail(
      `the pickle is not a state dict of tensors (nor a dict with one under 'state_dict' or 'model'); save model.state_dict()`,
    );
  const out = new Map<string, RawTensor>();
  for (const [k, v] of sd) out.set(String(k), materialise(String(k), v));
  return out;
}
