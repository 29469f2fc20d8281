// Measured private inference for the demo and the reduce report: `deepreduce pi serve` (and `pi dealer` when the
// preprocessing needs one) run as their own processes, and every image is classified by its own `pi query` process,
// so client and server share nothing but the socket. Every PI invocation of the demo and the report is in this
// file: the protocol options pass straight through to the CLI (piArgs), and DEFAULT_PI_OPTIONS is the one place
// that picks the protocol.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noGrad, tensor, tidy } from '../engine/index.js';
import { checkDatasetName, loadDataset, makeBatch } from '../data/index.js';
import { loadModelDir } from '../train/modeldir.js';
import { writeFileAtomic } from '../util/fs.js';
import { generateIdentity } from '../pi/node/transport/tls.js';
import { describeLink, parseLink } from '../pi/transport/shaping.js';
import { DEFAULT_PREPROCESS } from '../pi/linear/index.js';
import { DEFAULT_RELU } from '../pi/relu/registry.js';
import { packageVersion } from '../util/version.js';
import type { ReduceResults } from './pipeline.js';
import { frontOn, pickOn } from './latency.js';
import type { MeasuredModel, MeasuredPi } from './report-pi.js';

/** Protocol options, passed through to `deepreduce pi` as flags (unset ones are left to the CLI's defaults). */
export interface PiRunOptions {
  /** `--preprocess` (serve and query); 'dealer' also starts a `pi dealer` process (a third party). */
  preprocess: string;
  /** `--relu` (serve and query): the ReLU protocol. */
  relu?: string;
  /** `--link` (serve and query): the link profile the transport is shaped to. */
  link?: string;
  /**
   * TLS: the server presents `cert`/`key` and the client verifies it against `cert`; 'insecure' asks for plain TCP.
   * Unset: a fresh identity per measurement (one for the server, one for a dealer), made as `pi keygen` does.
   */
  tls?: { cert: string; key: string } | 'insecure';
  /** Further flags per process, verbatim. */
  extra?: { serve?: string[]; query?: string[]; dealer?: string[] };
}

/**
 * The protocol the demo and `reduce --measure-pi` measure by default, and the one the reduce latency estimate assumes:
 * the CLI's defaults (two parties, HE preprocessing, the OT ReLU, TLS with fresh identities) with the transport shaped
 * to the LAN profile (3 Gbit/s, 0.3 ms RTT), so that the measured latency and the estimate describe the same link.
 */
export const DEFAULT_PI_OPTIONS: PiRunOptions = { preprocess: DEFAULT_PREPROCESS, relu: DEFAULT_RELU, link: 'lan' };

/** TLS files of the parties: the server's, and the dealer's (for 'dealer' preprocessing). */
interface Identities {
  server: { cert: string; key: string };
  dealer?: { cert: string; key: string };
}

/** The flags each process gets for these options (besides its model, addresses and --json). */
export function piArgs(role: 'dealer' | 'serve' | 'query', o: PiRunOptions, ids?: Identities): string[] {
  const a: string[] = [];
  if (role !== 'dealer') {
    a.push('--preprocess', o.preprocess);
    if (o.relu) a.push('--relu', o.relu);
    if (o.link) a.push('--link', o.link);
  }
  const tls = o.tls === 'insecure' ? null : (o.tls ?? ids?.server);
  if (!tls) {
    if (role !== 'dealer') a.push('--insecure');
  } else if (role === 'query') a.push('--server-cert', tls.cert);
  else if (role === 'serve') a.push('--cert', tls.cert, '--key', tls.key);
  if (ids?.dealer && tls) {
    // The dealer presents its own identity and admits as "server" only the party presenting the server's certificate.
    if (role === 'dealer') a.push('--cert', ids.dealer.cert, '--key', ids.dealer.key, '--server-cert', tls.cert);
    else a.push('--dealer-cert', ids.dealer.cert);
  }
  return [...a, ...(o.extra?.[role] ?? [])];
}

/** Fresh TLS identities in `dir` for the parties these options need. */
async function makeIdentities(dir: string, o: PiRunOptions): Promise<Identities | undefined> {
  if (o.tls === 'insecure') return undefined;
  const make = async (name: string) => {
    const id = await generateIdentity({ names: ['localhost', '127.0.0.1'] });
    const cert = join(dir, `${name}.cert.pem`),
      key = join(dir, `${name}.key.pem`);
    writeFileAtomic(cert, id.cert);
    writeFileAtomic(key, id.key, 0o600);
    return { cert, key };
  };
  return { server: o.tls ?? (await make('server')), ...(needsDealer(o) ? { dealer: await make('dealer') } : {}) };
}

const needsDealer = (o: PiRunOptions) => o.preprocess === 'dealer';

/** What a link profile means in the reports, e.g. 'lan: 3 Gbit/s, 0.3 ms RTT' (the parties talk over loopback). */
export function linkName(o: PiRunOptions): string {
  const l = o.link === undefined ? null : parseLink(o.link);
  return l ? describeLink(l) : 'loopback, unshaped';
}

interface Stat {
  mean: number;
  min: number;
  max: number;
}

export interface PiImage {
  index: number;
  label: number;
  /** Top-1 of the secure run and of the float model. */
  secure: number;
  plain: number;
  setupS: number;
  offlineS: number;
  onlineS: number;
  /** Client <-> server bytes, both directions, all phases; dealer bytes apart. */
  bytes: number;
  onlineBytes: number;
  dealerBytes: number;
}

export interface PiMeasurement {
  model: string;
  /** ReLUs garbled per image, as the server's plan states them. */
  relus: number;
  options: PiRunOptions;
  link: string;
  /** Test images [from, from + n). */
  from: number;
  n: number;
  /** Images whose secure top-1 equals the float model's; images each classifies correctly. */
  agree: number;
  secureCorrect: number;
  plainCorrect: number;
  /** Per image: client wall time per phase (it includes waiting for the server), bytes. */
  setupS: Stat;
  offlineS: Stat;
  onlineS: Stat;
  bytes: Stat;
  dealerBytes: Stat;
  onlineBytes: Stat;
  images: PiImage[];
  /** Where and how it ran: every party on this machine, one libtorch thread each. */
  machine: { cpus: number; cpu: string; threadsPerParty: number };
  version: string;
  key: string;
}

export interface MeasureOptions {
  dataset: string;
  dataDir?: string;
  /** First test image (default 0). */
  from?: number;
  /** Seconds for a process to start listening, and for one query. */
  startTimeoutS?: number;
  queryTimeoutS?: number;
  /** A finished measurement with the same key is read from here instead of measured again; the new one is written here. */
  cache?: string;
  label?: string;
  log?: (s: string) => void;
}

/** A party's process entry (pi/node/main.ts: the `pi` commands alone), not the whole CLI. */
const piEntry = () => fileURLToPath(new URL('../pi/node/main.js', import.meta.url));
const stat = (v: number[]): Stat => ({
  mean: v.reduce((a, b) => a + b, 0) / v.length,
  min: Math.min(...v),
  max: Math.max(...v),
});
const argmax = (v: ArrayLike<number>, off = 0, n = v.length) => {
  let b = 0;
  for (let i = 1; i < n; i++) if (v[off + i]! > v[off + b]!) b = i;
  return b;
};

/** Top-1 of the float model and the labels for test images [from, from + n), prepared as in training. */
function plaintextTop1(
  dir: string,
  dataset: string,
  from: number,
  n: number,
  dataDir?: string,
): { plain: number[]; labels: number[] } {
  const { net, info } = loadModelDir(dir);
  try {
    const ds = loadDataset(checkDatasetName(dataset), 'test', dataDir ? { dir: dataDir } : {});
    if (from + n > ds.n) throw new Error(`${dataset}: asked for test images ${from}..${from + n - 1}, it has ${ds.n}`);
    const idx = Array.from({ length: n }, (_, i) => from + i);
    const s = net.spec.inputSize;
    const b = makeBatch(
      ds,
      idx,
      { ...(ds.h !== s ? { padTo: s } : {}), mean: info.input.mean, std: info.input.std },
      0,
    );
    const k = net.spec.numClasses;
    const logits = tidy(() => noGrad(() => net.forward(tensor(b.x, [n, ds.c, s, s])).toArray() as Float32Array));
    return { plain: idx.map((_, i) => argmax(logits, i * k, k)), labels: Array.from(b.y) };
  } finally {
    net.dispose();
  }
}

/** A `deepreduce pi` child; its stderr is kept for error messages, its stdout collected. */
class Party {
  readonly p: ChildProcess;
  err = '';
  out = '';
  private all = '';
  constructor(
    readonly name: string,
    args: string[],
  ) {
    // One libtorch thread per party: the parties share this machine's cores.
    this.p = spawn(process.execPath, [piEntry(), 'pi', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DEEPREDUCE_THREADS: '1' },
    });
    this.p.stdout!.on('data', (d: Buffer) => void (this.out += d));
    // The first 2,000 and the last 6,000 characters: an error line may come first and a long usage text after it.
    this.p.stderr!.on('data', (d: Buffer) => {
      this.all += d;
      this.err = this.all.length <= 8000 ? this.all : `${this.all.slice(0, 2000)}\n...\n${this.all.slice(-6000)}`;
      if (this.all.length > 64_000) this.all = this.all.slice(0, 2000) + this.all.slice(-6000);
    });
  }

  /** Resolves with the port once the process says it listens ("... on HOST:PORT"). */
  listening(timeoutS: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => fail(new Error(`${this.name} did not start listening within ${timeoutS} s: ${this.err.trim()}`)),
        timeoutS * 1e3,
      );
      const fail = (e: Error) => {
        clearTimeout(t);
        this.p.stderr!.off('data', check);
        reject(e);
      };
      const check = () => {
        const m = / on [^\s]*:(\d+)\b/.exec(this.err);
        if (m) {
          clearTimeout(t);
          this.p.stderr!.off('data', check);
          this.p.off('exit', exited);
          resolve(Number(m[1]));
        }
      };
      const exited = (code: number | null, sig: string | null) =>
        fail(new Error(`${this.name} exited (${sig ?? `exit ${code}`}) before listening: ${this.err.trim()}`));
      this.p.stderr!.on('data', check);
      this.p.once('exit', exited);
      check();
    });
  }

  /** Resolves with stdout when the process exits 0 within the deadline. */
  done(timeoutS: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.p.kill('SIGKILL');
        reject(new Error(`${this.name} took longer than ${timeoutS} s: ${this.err.trim()}`));
      }, timeoutS * 1e3);
      this.p.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      this.p.once('close', (code, sig) => {
        clearTimeout(t);
        if (code === 0) resolve(this.out);
        else reject(new Error(`${this.name} failed (${sig ?? `exit ${code}`}): ${this.err.trim()}`));
      });
    });
  }

  /** SIGTERM (the servers close and exit), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    if (this.p.exitCode !== null || this.p.signalCode !== null) return;
    const gone = new Promise<void>((r) => this.p.once('exit', () => r()));
    this.p.kill('SIGTERM');
    const t = setTimeout(() => this.p.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  }
}

interface QueryJson {
  predicted: number;
  plan: { relus: number };
  label?: number;
  phases: Record<'setup' | 'offline' | 'online', { ms: number; cToS: number; sToC: number; prep: number }>;
}

/** The cache key: the weights, the images and the protocol options. */
function measurementKey(dir: string, o: PiRunOptions, dataset: string, from: number, n: number): string {
  const h = createHash('sha256');
  for (const f of ['model.json', 'model.safetensors']) h.update(readFileSync(join(dir, f)));
  h.update(JSON.stringify({ o, dataset, from, n, version: packageVersion() }));
  return h.digest('hex').slice(0, 32);
}

/**
 * Classifies test images [from, from + n) of `dataset` with the model in `dir` under two-party private inference,
 * each image by its own client process against one server process (and one dealer process for 'dealer'), and
 * compares each secure top-1 with the float model's.
 */
export async function measurePi(
  dir: string,
  n: number,
  options: PiRunOptions,
  m: MeasureOptions,
): Promise<PiMeasurement> {
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`measure PI: the number of images must be an integer >= 1, got ${n}`);
  if (!existsSync(join(dir, 'model.json')))
    throw new Error(`measure PI: ${dir} is not a model directory (model.json missing)`);
  const from = m.from ?? 0;
  const key = measurementKey(dir, options, m.dataset, from, n);
  if (m.cache && existsSync(m.cache)) {
    const old = JSON.parse(readFileSync(m.cache, 'utf8')) as PiMeasurement;
    if (old.key === key) return old;
  }
  const label = m.label ?? dir;
  const log = m.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const { plain, labels } = plaintextTop1(dir, m.dataset, from, n, m.dataDir);
  const startS = m.startTimeoutS ?? 120,
    queryS = m.queryTimeoutS ?? 600;
  const parties: Party[] = [];
  const stopAll = () => {
    for (const p of parties) p.p.kill('SIGKILL');
  };
  process.once('exit', stopAll);
  const tlsDir = mkdtempSync(join(tmpdir(), 'dr-pi-tls-'));
  try {
    const ids = await makeIdentities(tlsDir, options);
    const host = '127.0.0.1',
      listen = ['--model', dir, '--port', '0', '--host', host];
    let dealerAt: string[] = [];
    if (needsDealer(options)) {
      const d = new Party(`pi dealer (${label})`, ['dealer', ...listen, ...piArgs('dealer', options, ids)]);
      parties.push(d);
      dealerAt = ['--dealer', `${host}:${await d.listening(startS)}`];
    }
    const s = new Party(`pi serve (${label})`, [
      'serve',
      ...listen,
      ...dealerAt,
      '--json',
      ...piArgs('serve', options, ids),
    ]);
    parties.push(s);
    const port = await s.listening(startS);
    const images: PiImage[] = [];
    let relus = 0;
    const t0 = Date.now();
    let shown = 0;
    for (let i = 0; i < n; i++) {
      const q = new Party(`pi query (${label}, test image ${from + i})`, [
        'query',
        '--connect',
        `${host}:${port}`,
        ...dealerAt,
        '--dataset',
        m.dataset,
        '--index',
        String(from + i),
        ...(m.dataDir ? ['--data', m.dataDir] : []),
        '--json',
        ...piArgs('query', options, ids),
      ]);
      parties.push(q);
      let r: QueryJson;
      try {
        r = JSON.parse(await q.done(queryS)) as QueryJson;
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${s.name} said: ${s.err.trim().split('\n').slice(-3).join('\n')}`);
      }
      parties.pop();
      const ph = r.phases;
      relus = r.plan.relus;
      const bytes = (['setup', 'offline', 'online'] as const).reduce((a, k) => a + ph[k].cToS + ph[k].sToC, 0);
      images.push({
        index: from + i,
        label: labels[i]!,
        secure: r.predicted,
        plain: plain[i]!,
        setupS: ph.setup.ms / 1e3,
        offlineS: ph.offline.ms / 1e3,
        onlineS: ph.online.ms / 1e3,
        bytes,
        onlineBytes: ph.online.cToS + ph.online.sToC,
        dealerBytes: ph.setup.prep + ph.offline.prep + ph.online.prep,
      });
      const el = (Date.now() - t0) / 1e3;
      if (i + 1 === n || el - shown >= 10) {
        shown = el;
        log(
          `  pi ${label}: ${i + 1}/${n} images, ${(el / (i + 1)).toFixed(1)} s/image, ETA ${(((n - i - 1) * el) / (i + 1)).toFixed(0)} s ` +
            `(last: offline ${(ph.offline.ms / 1e3).toFixed(2)} s, online ${(ph.online.ms / 1e3).toFixed(2)} s, top-1 ${r.predicted} secure / ${plain[i]} plaintext)`,
        );
      }
    }
    const res: PiMeasurement = {
      model: dir,
      relus,
      options,
      link: linkName(options),
      from,
      n,
      agree: images.filter((x) => x.secure === x.plain).length,
      secureCorrect: images.filter((x) => x.secure === x.label).length,
      plainCorrect: images.filter((x) => x.plain === x.label).length,
      setupS: stat(images.map((x) => x.setupS)),
      offlineS: stat(images.map((x) => x.offlineS)),
      onlineS: stat(images.map((x) => x.onlineS)),
      bytes: stat(images.map((x) => x.bytes)),
      dealerBytes: stat(images.map((x) => x.dealerBytes)),
      onlineBytes: stat(images.map((x) => x.onlineBytes)),
      images,
      machine: { cpus: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', threadsPerParty: 1 },
      version: packageVersion(),
      key,
    };
    if (m.cache) writeFileAtomic(m.cache, `${JSON.stringify(res, null, 2)}\n`);
    return res;
  } finally {
    process.off('exit', stopAll);
    await Promise.all(parties.map((p) => p.stop()));
    rmSync(tlsDir, { recursive: true, force: true });
  }
}

/** `reduce --measure-pi`: which models, how many images, which protocol. */
export interface MeasurePiConfig {
  images: number;
  /** 'front': the teacher and every model on the (ReLUs, accuracy) front; 'recommended': the teacher and the recommended model. */
  models: 'front' | 'recommended';
  /** Recommend the smallest model within this accuracy loss of the teacher (fraction: 0.01 = 1 point). */
  tolerance: number;
  options: PiRunOptions;
}

/**
 * The cheapest candidate on the run's objective (ReLUs, estimated total or online latency) within `tolerance` of the
 * teacher (or null), and the model to measure beside the teacher.
 */
export function pickRecommended(r: ReduceResults, tolerance: number): { recommended: string | null; measure: string } {
  const pool = r.candidates.filter((x) => x.kd === r.config.kd);
  const o = r.objective ?? 'relus';
  const rec = pickOn(pool, o, r.baseline.acc - tolerance);
  const best = pool.reduce((a, b) => (b.acc > a.acc ? b : a), pool[0]!);
  return { recommended: rec?.id ?? null, measure: rec?.id ?? best.id };
}

/**
 * Measures the teacher and the chosen models of a finished reduce run (results cached under `<out>/pi/`, so a
 * re-run measures only what changed). Without a model within the tolerance, 'recommended' measures the most
 * accurate candidate and recommends none.
 */
export async function measureRunPi(
  r: ReduceResults,
  c: MeasurePiConfig,
  log: (s: string) => void,
): Promise<MeasuredPi> {
  const pool = r.candidates.filter((x) => x.kd === r.config.kd);
  const pick = pickRecommended(r, c.tolerance);
  const o = r.objective ?? 'relus';
  const ids = c.models === 'front' ? frontOn(pool, o) : [pick.measure];
  const chosen = [
    {
      id: 'teacher',
      description: 'all ReLUs (the baseline, teacher of the candidates)',
      relus: r.baseline.relus,
      acc: r.baseline.acc,
      estimatedS: r.baseline.latency_s,
      dir: r.baseline.dir,
    },
    ...ids
      .map((id) => r.candidates.find((x) => x.id === id)!)
      .sort((a, b) => b.relus - a.relus)
      .map((x) => ({
        id: x.id,
        description: x.description,
        relus: x.relus,
        acc: x.acc,
        estimatedS: x.latency_s,
        dir: x.dir,
      })),
  ];
  log(
    `measured private inference: ${chosen.length} models x ${c.images} test images (${chosen.map((x) => x.id).join(', ')})`,
  );
  const models: MeasuredModel[] = [];
  for (const x of chosen) {
    const pi = await measurePi(x.dir, c.images, c.options, {
      dataset: r.config.dataset,
      dataDir: r.config.dataDir,
      cache: join(r.config.out, 'pi', `${x.id}.json`),
      label: x.id,
      log,
    });
    models.push({ id: x.id, description: x.description, relus: x.relus, acc: x.acc, estimatedS: x.estimatedS, pi });
  }
  // Measured, the pick is by measured latency (total, or online under the online objective): the fastest measured
  // model within the tolerance. Under the ReLU objective it stays the cheapest in ReLUs.
  const within = models.slice(1).filter((x) => x.acc >= r.baseline.acc - c.tolerance);
  const measuredCost = (x: MeasuredModel) =>
    o === 'relus' ? x.relus : o === 'online' ? x.pi.onlineS.mean : x.pi.offlineS.mean + x.pi.onlineS.mean;
  const measuredPick = within.length ? within.reduce((a, b) => (measuredCost(b) < measuredCost(a) ? b : a)).id : null;
  const testSize = loadDataset(
    checkDatasetName(r.config.dataset),
    'test',
    r.config.dataDir ? { dir: r.config.dataDir } : {},
  ).n;
  return {
    options: c.options,
    link: linkName(c.options),
    dataset: r.config.dataset,
    from: 0,
    images: c.images,
    testImages: Math.min(testSize, r.config.limitTest ?? testSize),
    tolerance: c.tolerance,
    recommended: c.models === 'front' ? measuredPick : pick.recommended,
    estimatedPick: pick.recommended,
    objective: o,
    costModel: r.costModel.source,
    models,
  };
}
