import { native, defaultThreads, type NativeTensor } from './native.js';

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';
export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array;
export type Reduction = 'mean' | 'sum' | 'none' | 'batchmean';

// ---------------------------------------------------------------------------------------------
// Scopes: deterministic release of native memory. Every tensor created inside tidy() is freed
// when it returns, except the returned tensors and those marked with keep().

const scopes: Set<Tensor>[] = [];

function track(t: Tensor): void {
  const s = scopes[scopes.length - 1];
  if (s) s.add(t);
  else native.accountExternal(t.handle); // only the garbage collector frees it: tell V8 its size
}

function collect(v: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const e of v) collect(e, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const e of Object.values(v)) collect(e, out, depth + 1);
}

/** Runs fn; frees every tensor it created except those it returns (arrays/plain objects are searched). */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const keep = new Set<Tensor>();
  collect(result, keep);
  for (const t of scope) if (!keep.has(t)) t.dispose();
  const parent = scopes[scopes.length - 1];
  for (const t of keep)
    if (scope.has(t)) {
      if (parent) parent.add(t);
      else native.accountExternal(t.handle);
    }
  return result;
}

/** Removes a tensor from every enclosing scope so that it outlives them. */
export function keep<T extends Tensor>(t: T): T {
  let scoped = false;
  for (const s of scopes) scoped = s.delete(t) || scoped;
  if (scoped) native.accountExternal(t.handle);
  return t;
}

/** Runs fn with autograd recording off. */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false) as boolean;
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs fn in libtorch inference mode (no autograd, no version counters); results cannot enter autograd later. */
export function inferenceMode<T>(fn: () => T): T {
  native.inferenceModeEnter();
  try {
    return fn();
  } finally {
    native.inferenceModeExit();
  }
}

function arrayDtype(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Uint8Array) return 'uint8';
  if (a instanceof Int8Array) return 'int8';
  return 'int16';
}

type Other = Tensor | number;
const h = (x: Other): NativeTensor | number => (typeof x === 'number' ? x : x.handle);

export class Tensor {
  #h: NativeTensor | null;

  constructor(handle: NativeTensor) {
    this.#h = handle;
    track(this);
  }

  /** The native handle; throws if the tensor was disposed. */
  get handle(): NativeTensor {
    if (this.#h === null) throw new Error('tensor used after dispose()');
    return this.#h;
  }
  get disposed(): boolean {
    return this.#h === null;
  }
  dispose(): void {
    if (this.#h !== null) {
      native.dispose(this.#h);
      this.#h = null;
    }
  }
  keep(): this {
    return keep(this);
  }

  // -- metadata
  get shape(): number[] {
    return native.shape(this.handle);
  }
  get dtype(): DType {
    return native.dtype(this.handle);
  }
  get device(): string {
    return native.device(this.handle);
  }
  get numel(): number {
    return native.numel(this.handle);
  }
  get rank(): number {
    return this.shape.length;
  }
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  isContiguous(format: 'contiguous' | 'channels_last' = 'contiguous'): boolean {
    return native.isContiguous(this.handle, format);
  }

  // -- data
  toArray(): TypedArray {
    return native.toArray(this.handle);
  }
  toFloat32(): Float32Array {
    if (this.dtype === 'float32') return this.toArray() as Float32Array;
    return tidy(() => this.to('float32').toArray() as Float32Array);
  }
  item(): number {
    return native.item(this.handle);
  }
  /** Nested JS arrays (for tests and small tensors). */
  toList(): unknown {
    const flat = Array.from(this.toArray() as ArrayLike<number | bigint>, Number);
    const shape = this.shape;
    const build = (d: number, off: number): unknown => {
      if (d === shape.length) return flat[off];
      const stride = shape.slice(d + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: shape[d]! }, (_, i) => build(d + 1, off + i * stride));
    };
    return build(0, 0);
  }

  // -- conversion
  to(dtypeOrDevice: DType | string): Tensor {
    const dtypes = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];
    if (dtypes.includes(dtypeOrDevice)) return new Tensor(native.toDtype(this.handle, dtypeOrDevice));
    return new Tensor(native.toDevice(this.handle, dtypeOrDevice));
  }
  contiguous(format: 'contiguous' | 'channels_last' = 'contiguous'): Tensor {
    return new Tensor(native.contiguous(this.handle, format));
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.handle));
  }
  detach(): Tensor {
    return new Tensor(native.detach(this.handle));
  }

  // -- elementwise
  add(o: Other, alpha = 1): Tensor {
    return new Tensor(native.add(this.handle, h(o), alpha));
  }
  sub(o: Other, alpha = 1): Tensor {
    return new Tensor(native.sub(this.handle, h(o), alpha));
  }
  mul(o: Other): Tensor {
    return new Tensor(native.mul(this.handle, h(o)));
  }
  div(o: Other): Tensor {
    return new Tensor(native.div(this.handle, h(o)));
  }
  eq(o: Other): Tensor {
    return new Tensor(native.eq(this.handle, h(o)));
  }
  ne(o: Other): Tensor {
    return new Tensor(native.ne(this.handle, h(o)));
  }
  gt(o: Other): Tensor {
    return new Tensor(native.gt(this.handle, h(o)));
  }
  neg(): Tensor {
    return new Tensor(native.neg(this.handle));
  }
  exp(): Tensor {
    return new Tensor(native.exp(this.handle));
  }
  log(): Tensor {
    return new Tensor(native.log(this.handle));
  }
  sqrt(): Tensor {
    return new Tensor(native.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return new Tensor(native.rsqrt(this.handle));
  }
  abs(): Tensor {
    return new Tensor(native.abs(this.handle));
  }
  relu(): Tensor {
    return new Tensor(native.relu(this.handle));
  }
  tanh(): Tensor {
    return new Tensor(native.tanh(this.handle));
  }
  floor(): Tensor {
    return new Tensor(native.floor(this.handle));
  }
  round(): Tensor {
    return new Tensor(native.round(this.handle));
  }
  square(): Tensor {
    return new Tensor(native.square(this.handle));
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return new Tensor(native.clamp(this.handle, min ?? null, max ?? null));
  }

  // -- linear algebra
  matmul(o: Tensor): Tensor {
    return new Tensor(native.matmul(this.handle, o.handle));
  }

  // -- shape
  reshape(shape: number[]): Tensor {
    return new Tensor(native.reshape(this.handle, shape));
  }
  permute(dims: number[]): Tensor {
    return new Tensor(native.permute(this.handle, dims));
  }
  flatten(start = 0, end = -1): Tensor {
    return new Tensor(native.flatten(this.handle, start, end));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(native.unsqueeze(this.handle, dim));
  }
  repeat(reps: number[]): Tensor {
    return new Tensor(native.repeat(this.handle, reps));
  }
  /** Python's x[..., start:end:step, ...] along dim. */
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor {
    return new Tensor(native.slice(this.handle, dim, start ?? null, end ?? null, step));
  }
  select(dim: number, index: number): Tensor {
    return new Tensor(native.select(this.handle, dim, index));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.gather(this.handle, dim, index.handle));
  }
  /** Constant padding, torch.nn.functional.pad order (last dim first: [left, right, top, bottom, ...]). */
  pad(pads: number[], value = 0): Tensor {
    return new Tensor(native.pad(this.handle, pads, value));
  }
  flip(dims: number[]): Tensor {
    return new Tensor(native.flip(this.handle, dims));
  }

  // -- reductions
  sum(dims?: number[], keepdim = false): Tensor {
    return new Tensor(native.sum(this.handle, dims ?? null, keepdim));
  }
  mean(dims?: number[], keepdim = false): Tensor {
    return new Tensor(native.mean(this.handle, dims ?? null, keepdim));
  }
  amax(dims?: number[], keepdim = false): Tensor {
    return new Tensor(native.amax(this.handle, dims ?? null, keepdim));
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmax(this.handle, dim ?? null, keepdim));
  }
  logSoftmax(dim = -1): Tensor {
    return new Tensor(native.logSoftmax(this.handle, dim));
  }
  softmax(dim = -1): Tensor {
    return new Tensor(native.softmax(this.handle, dim));
  }

  // -- autograd
  setRequiresGrad(on = true): this {
    native.setRequiresGrad(this.handle, on);
    return this;
  }
  backward(grad?: Tensor, retainGraph = false): void {
    native.backward(this.handle, grad?.handle ?? null, retainGraph);
  }
  /** The accumulated gradient, or null. A new handle each call: dispose it or read it inside tidy(). */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g?.handle ?? null);
  }

  // -- in-place (parameter updates); they do not record new handles
  add_(o: Other, alpha = 1): this {
    native.add_(this.handle, h(o), alpha);
    return this;
  }
  mul_(o: Other): this {
    native.mul_(this.handle, h(o));
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    native.addcmul_(this.handle, a.handle, b.handle, value);
    return this;
  }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    native.addcdiv_(this.handle, a.handle, b.handle, value);
    return this;
  }
  relu_(): this {
    native.relu_(this.handle);
    return this;
  }
  /** Swaps in src's data (shape/layout may differ) keeping this tensor's autograd identity. */
  setData(src: Tensor): this {
    native.setData(this.handle, src.handle);
    return this;
  }
  copy_(src: Tensor): this {
    native.copy_(this.handle, src.handle);
    return this;
  }
  uniform_(lo = 0, hi = 1): this {
    native.uniform_(this.handle, lo, hi);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    native.normal_(this.handle, mean, std);
    return this;
  }

  toString(): string {
    return `Tensor(${JSON.stringify(this.shape)}, ${this.dtype})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Creation

export function tensor(data: TypedArray | number[], shape?: number[], dtype?: DType): Tensor {
  const arr: TypedArray = Array.isArray(data) ? Float32Array.from(data) : data;
  const s = shape ?? [arr.length];
  return new Tensor(native.fromArray(arr, s, dtype ?? arrayDtype(arr)));
}
export const scalar = (v: number, dtype: DType = 'float32'): Tensor => new Tensor(native.full([], v, dtype));
export const zeros = (shape: number[], dtype: DType = 'float32', device?: string): Tensor =>
  new Tensor(device ? native.zeros(shape, dtype, device) : native.zeros(shape, dtype));
export const ones = (shape: number[], dtype: DType = 'float32'): Tensor => new Tensor(native.ones(shape, dtype));
export const full = (shape: number[], v: number, dtype: DType = 'float32'): Tensor =>
  new Tensor(native.full(shape, v, dtype));
export const empty = (shape: number[], dtype: DType = 'float32'): Tensor => new Tensor(native.empty(shape, dtype));
export const randn = (shape: number[], dtype: DType = 'float32'): Tensor => new Tensor(native.randn(shape, dtype));
export const rand = (shape: number[], dtype: DType = 'float32'): Tensor => new Tensor(native.rand(shape, dtype));
export const arange = (start: number, end: number, step = 1, dtype: DType = 'float32'): Tensor =>
  new Tensor(native.arange(start, end, step, dtype));
/** Integer class labels as int64 (what cross-entropy expects). */
export const labels = (y: Int32Array | Uint8Array | Uint16Array | number[]): Tensor =>
  tensor(BigInt64Array.from(Array.from(y as ArrayLike<number>, (v) => BigInt(v))), [y.length]);

const handles = (ts: Tensor[]) => ts.map((t) => t.handle);
export const cat = (ts: Tensor[], dim = 0): Tensor => new Tensor(native.cat(handles(ts), dim));
export const stack = (ts: Tensor[], dim = 0): Tensor => new Tensor(native.stack(handles(ts), dim));
export const where = (cond: Tensor, a: Tensor, b: Tensor): Tensor =>
  new Tensor(native.where(cond.handle, a.handle, b.handle));

// ---------------------------------------------------------------------------------------------
// Runtime

export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
/** The default CPU generator's state (for exact resume). */
export function rngState(): Uint8Array {
  return tidy(() => new Tensor(native.rngState()).toArray() as Uint8Array);
}
export function setRngState(state: Uint8Array): void {
  tidy(() => native.setRngState(tensor(state, [state.length], 'uint8').handle));
}
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
export { defaultThreads };
export const cudaAvailable = (): boolean => native.cudaAvailable();
export const torchVersion = (): string => native.version();
