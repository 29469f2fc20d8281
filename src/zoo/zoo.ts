// The model zoo: trained model directories kept in the package (zoo/index.json + zoo/NAME/), named `zoo:NAME`
// wherever a model directory is accepted. Weights may be stored as fp16 safetensors (half the bytes); before use a
// zoo model is materialised as an ordinary fp32 model directory in a cache, so every reader sees the usual files.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { safetensorsToFp32 } from './fp16.js';

export const ZOO_PREFIX = 'zoo:';

/** Measured private inference of a zoo model (per image, client wall time; `command` reproduces it). */
export interface ZooPi {
  images: number;
  /** Mean offline + online seconds per image, and the online part. */
  totalS: number;
  onlineS: number;
  offlineS: number;
  /** Images whose secure top-1 equals the float model's. */
  agree: number;
  protocol: string;
  command: string;
  machine: string;
  measured: string;
  /** Other processes were running: the seconds are disturbed. */
  noisy?: boolean;
}

export interface ZooEntry {
  name: string;
  description: string;
  /** 'teacher': the all-ReLU network; 'front': a reduced model of the measured front. */
  role: 'teacher' | 'front' | 'other';
  /** Folder under the zoo root. */
  dir: string;
  dataset: string;
  arch: string;
  /** The spec in brief (width, blocks, input, classes, the mask's kept sites). */
  spec: Record<string, unknown>;
  /** Top-1 on the test set with the stored weights; `fp32`: before fp16 storage. */
  accuracy: { test: number; images: number; fp32?: number };
  relus: number;
  storage: 'fp16' | 'fp32';
  /** File name -> bytes, and their sum. */
  files: Record<string, number>;
  bytes: number;
  pi?: ZooPi;
  /** The one command that retrains it, and how long it took on `machine`. */
  reproduce?: { command: string; seconds?: number; machine?: string };
  added: string;
}

export interface ZooIndex {
  format: 'deepreduce-zoo';
  version: 1;
  models: ZooEntry[];
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;
export const isZooRef = (s: string): boolean => s.startsWith(ZOO_PREFIX);

export function checkZooName(name: string): string {
  if (!NAME.test(name))
    throw new Error(
      `zoo name '${name}' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  return name;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6 && !existsSync(join(dir, 'package.json')); i++) dir = dirname(dir);
  return dir;
}

/** The zoo folder: $DEEPREDUCE_ZOO, else the package's zoo/ (shipped in the npm package too). */
export function zooRoot(): string {
  return resolve(process.env.DEEPREDUCE_ZOO || join(packageRoot(), 'zoo'));
}

/** Where zoo models are materialised: $DEEPREDUCE_CACHE, else $XDG_CACHE_HOME/deepreduce, else ~/.cache/deepreduce. */
export function cacheRoot(): string {
  if (process.env.DEEPREDUCE_CACHE) return resolve(process.env.DEEPREDUCE_CACHE);
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg || join(homedir() || tmpdir(), '.cache'), 'deepreduce');
}

export const emptyIndex = (): ZooIndex => ({ format: 'deepreduce-zoo', version: 1, models: [] });

/** zoo/index.json (an absent file is an empty zoo), checked. */
export function readZooIndex(root = zooRoot()): ZooIndex {
  const file = join(root, 'index.json');
  if (!existsSync(file)) return emptyIndex();
  let z: ZooIndex;
  try {
    z = JSON.parse(readFileSync(file, 'utf8')) as ZooIndex;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (z?.format !== 'deepreduce-zoo' || !Array.isArray(z.models))
    throw new Error(`${file}: not a zoo index (format 'deepreduce-zoo' with a 'models' list)`);
  for (const [i, m] of z.models.entries()) {
    if (typeof m?.name !== 'string' || !NAME.test(m.name)) throw new Error(`${file}: models[${i}] has a bad name`);
    if (typeof m.dir !== 'string' || !inside(root, m.dir))
      throw new Error(`${file}: models[${i}] (${m.name}): dir '${m.dir}' must be a folder inside the zoo`);
  }
  return z;
}

const inside = (root: string, rel: string) => {
  const p = resolve(root, rel);
  return p !== resolve(root) && p.startsWith(resolve(root) + sep);
};

/** The entry named `name`, or an error that lists the zoo's names. */
export function zooEntry(name: string, root = zooRoot()): ZooEntry {
  const z = readZooIndex(root);
  const e = z.models.find((m) => m.name === name);
  if (e) return e;
  const have = z.models.map((m) => m.name);
  throw new Error(
    `${ZOO_PREFIX}${name}: no such model in the zoo (${root}); ` +
      (have.length ? `it has: ${have.join(', ')}` : 'the zoo is empty (deepreduce zoo add DIR --name NAME adds one)'),
  );
}

const MODEL_FILES = ['model.json', 'model.safetensors', 'mask.json'];

/**
 * A model directory for `arg`: a path is returned as it is; `zoo:NAME` is materialised (fp32 weights, model.json,
 * mask.json) under the cache, keyed by the stored files' hash, and that folder returned.
 */
export function resolveModelDir(arg: string, o: { root?: string; cache?: string } = {}): string {
  if (!isZooRef(arg)) return arg;
  const root = o.root ?? zooRoot();
  const e = zooEntry(arg.slice(ZOO_PREFIX.length), root);
  const src = join(root, e.dir);
  const bytes = new Map<string, Buffer>();
  for (const f of MODEL_FILES) {
    const p = join(src, f);
    if (existsSync(p)) bytes.set(f, readFileSync(p));
    else if (f !== 'mask.json') throw new Error(`${arg}: ${p} is missing (the zoo entry is incomplete)`);
  }
  const h = createHash('sha256');
  for (const [f, b] of bytes) h.update(f).update(b);
  const target = join(o.cache ?? cacheRoot(), 'zoo', `${e.name}-${h.digest('hex').slice(0, 16)}`);
  if (existsSync(join(target, 'model.safetensors'))) return target;
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  mkdirSync(tmp, { recursive: true });
  try {
    for (const [f, b] of bytes)
      writeFileSync(join(tmp, f), f === 'model.safetensors' ? safetensorsToFp32(b, join(src, f)) : b);
    writeFileSync(join(tmp, 'zoo.json'), `${JSON.stringify({ zoo: arg, from: src, storage: e.storage }, null, 2)}\n`);
    try {
      renameSync(tmp, target);
    } catch (err) {
      // Another process materialised it first: use theirs.
      if (!existsSync(join(target, 'model.safetensors'))) throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return target;
}

/** Sizes of an entry's stored files. */
export function fileSizes(dir: string): { files: Record<string, number>; bytes: number } {
  const files: Record<string, number> = {};
  for (const f of MODEL_FILES) if (existsSync(join(dir, f))) files[f] = statSync(join(dir, f)).size;
  return { files, bytes: Object.values(files).reduce((a, b) => a + b, 0) };
}

export const fmtBytes = (b: number): string =>
  b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${b} B`;

/** The zoo as a text table (the README's table is made from the same rows by scripts/zoo-table.mjs). */
export function zooTableRows(z: ZooIndex): { head: string[]; rows: string[][]; right: boolean[] } {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const head = ['name', 'role', 'arch', 'ReLUs', 'accuracy', 'PI total s', 'PI online s', 'storage', 'size'];
  const rows = z.models.map((m) => [
    m.name,
    m.role,
    m.arch,
    m.relus.toLocaleString('en-US'),
    `${pct(m.accuracy.test)} (${m.accuracy.images.toLocaleString('en-US')})`,
    m.pi ? m.pi.totalS.toFixed(2) : '-',
    m.pi ? m.pi.onlineS.toFixed(2) : '-',
    m.storage,
    fmtBytes(m.bytes),
  ]);
  return { head, rows, right: head.map((_, i) => i >= 3 && i !== 7) };
}
