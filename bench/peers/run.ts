// Our runtime beside two peers built from source by bench/peers/build.sh, in one run on this machine:
//   relu   one batch of --n ReLUs: SCI (EzPC; CrypTFlow2's millionaires' ReLU over IKNP/KK13) against our 'ot', and
//          OpenCheetah (Cheetah's ReLU over silent OT, Ferret) against our 'silent'
//   conv   one convolution (--conv C,H,O,k,s,p; default 3x3 256->256 at 14x14): Cheetah's HE conv against our
//          HePreprocessor (bench/lib/he-layer.ts)
// Each peer runs its library's own entry points (Relu; Cheetah's CheetahLinear::conv2d, which its Conv2DWrapper calls
// before it reveals everything to check it) through bench/peers/driver.cpp, both parties as
// two processes on 127.0.0.1, --nt threads each; time is the slower party's wall time around the call (set-up: base
// OTs, silent-OT and HE keys, outside it), CPU is both processes' CPU over the call, bytes are both parties' sent bytes.
// Ours runs both parties in this process on one thread (bench/lib/relu-cost.ts: offline + online of one site, session
// set-up outside), so its wall time is both parties' work back to back. Peers' rings are Z_2^ell with ell < 64 (both
// assert it); ours is Z_2^64 and a site of width W, shift S compares W - S bits: ours runs at W = ell + S so that
// both compare ell bits. Ratios are ours / peer (below 1: ours is smaller or faster). A peer that is not built is
// reported with what blocks it (PEERS_DIR/<peer>/status) and the others still run. The JSON (rows, ratios, each
// peer's commits) goes to --out (default PEERS_DIR/results.json, PEERS_DIR as for build.sh: ~/.cache/deepreduce-peers).
// Usage: node dist/bench/peers/run.js [--what relu,conv] [--peers sci,cheetah] [--n 1048576] [--ell 37] [--shift 12]
// [--conv 256,14,256,3,1,1] [--nt 1] [--peers-dir DIR] [--out FILE] [--timeout 1800] [--json]
import '../lib/help.js';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { reluCost } from '../lib/relu-cost.js';
import { convLayer, heRun } from '../lib/he-layer.js';

const { values: a } = parseArgs({
  options: {
    what: { type: 'string', default: 'relu,conv' },
    peers: { type: 'string', default: 'sci,cheetah' },
    n: { type: 'string', default: String(1 << 20) },
    ell: { type: 'string', default: '37' },
    shift: { type: 'string', default: '12' },
    conv: { type: 'string', default: '256,14,256,3,1,1' },
    nt: { type: 'string', default: '1' },
    'peers-dir': { type: 'string', default: process.env.PEERS_DIR ?? join(homedir(), '.cache', 'deepreduce-peers') },
    out: { type: 'string' }, // default PEERS_DIR/results.json
    timeout: { type: 'string', default: '1800' },
    json: { type: 'boolean' },
  },
});
const int = (k: string, v: string, lo: number, hi: number) => {
  const x = Number(v);
  if (!Number.isInteger(x) || x < lo || x > hi)
    throw new Error(`--${k} must be an integer in [${lo}, ${hi}], got ${v}`);
  return x;
};
const n = int('n', a.n!, 1, 1 << 24),
  ell = int('ell', a.ell!, 2, 63),
  shift = int('shift', a.shift!, 0, 62),
  nt = int('nt', a.nt!, 1, 4),
  timeoutS = int('timeout', a.timeout!, 1, 86400);
if (ell + shift > 64) throw new Error(`--ell + --shift must be at most 64 (our site's width), got ${ell + shift}`);
const what = new Set(a.what!.split(','));
const wanted = new Set(a.peers!.split(','));
for (const w of what) if (w !== 'relu' && w !== 'conv') throw new Error(`--what: relu and/or conv, got ${w}`);
for (const p of wanted) if (p !== 'sci' && p !== 'cheetah') throw new Error(`--peers: sci and/or cheetah, got ${p}`);
const [C, H, O, k, st, pad] = a.conv!.split(',').map(Number) as number[];
if (st !== 1 || pad !== Math.floor(k! / 2))
  throw new Error('--conv: the peers run stride 1 with SAME padding (p = k/2)');
const peersDir = a['peers-dir']!;
const outFile = a.out ?? join(peersDir, 'results.json');

interface Peer {
  name: 'sci' | 'cheetah';
  repo: string;
  built: boolean;
  /** why it is not built (its build status), or null */
  blocked: string | null;
  commits: string[];
}
function peer(name: 'sci' | 'cheetah'): Peer {
  const d = join(peersDir, name);
  const read = (f: string) => (existsSync(join(d, f)) ? readFileSync(join(d, f), 'utf8').trim() : '');
  const status = read('status');
  const built = status === 'ok' && existsSync(join(d, 'driver'));
  return {
    name,
    repo: name === 'sci' ? 'microsoft/EzPC (SCI)' : 'Alibaba-Gemini-Lab/OpenCheetah',
    built,
    blocked: built ? null : status || `not built: run bench/peers/build.sh ${name} (PEERS_DIR=${peersDir})`,
    commits: read('commit').split('\n').filter(Boolean),
  };
}

interface PartyResult {
  seconds: number;
  cpu_seconds: number;
  sent: number;
  setup_seconds: number;
  setup_sent: number;
  /** the server's count of ReLU outputs that are not ReLU(x); -1 where not checked (conv, the client) */
  wrong: number;
}
/** Both parties of a peer's driver on 127.0.0.1; resolves with each party's PEER_RESULT line. */
function runDriver(p: Peer, args: string[]): Promise<[PartyResult, PartyResult]> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const bin = join(peersDir, p.name, 'driver');
  // a fresh folder per run: Cheetah's Ferret keeps its bootstrap OTs in ./data/ and would reuse a previous run's
  const cwd = mkdtempSync(join(tmpdir(), `peer-${p.name}-`));
  mkdirSync(join(cwd, 'data'));
  const kids: ReturnType<typeof spawn>[] = [];
  const one = (r: number) =>
    new Promise<PartyResult>((resolve, reject) => {
      const ch = spawn(bin, [`r=${r}`, `p=${port}`, 'ip=127.0.0.1', `nt=${nt}`, ...args], {
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      kids.push(ch);
      let out = '',
        err = '';
      ch.stdout.on('data', (b: Buffer) => {
        out = (out + b.toString()).slice(-1 << 16);
      });
      ch.stderr.on('data', (b: Buffer) => {
        err = (err + b.toString()).slice(-4096);
      });
      const timer = setTimeout(() => ch.kill('SIGKILL'), timeoutS * 1e3);
      ch.on('error', reject);
      ch.on('close', (code, sig) => {
        clearTimeout(timer);
        const line = out.split('\n').find((l) => l.startsWith('PEER_RESULT '));
        if (code !== 0 || !line) {
          reject(
            new Error(
              `${p.name} party ${r}: exit ${code ?? sig}; ${(err || out).trim().split('\n').slice(-3).join(' | ')}`,
            ),
          );
          return;
        }
        const kv = Object.fromEntries(
          line
            .split(' ')
            .slice(1)
            .map((t) => t.split('=') as [string, string]),
        );
        resolve({
          seconds: Number(kv.seconds),
          cpu_seconds: Number(kv.cpu_seconds),
          sent: Number(kv.sent),
          setup_seconds: Number(kv.setup_seconds),
          setup_sent: Number(kv.setup_sent),
          wrong: Number(kv.wrong ?? -1),
        });
      });
    });
  // a party that fails takes the other down (it would wait for its peer until the timeout)
  const both = Promise.all([one(1), one(2)]).catch((e: unknown) => {
    for (const ch of kids) if (ch.exitCode === null) ch.kill('SIGKILL');
    throw e;
  });
  return both.finally(() => rmSync(cwd, { recursive: true, force: true }));
}

interface Row {
  task: string;
  system: string;
  MB: number | null;
  seconds: number | null;
  cpu_seconds: number | null;
  setup_s?: number | null;
  setup_MB?: number | null;
  /** ReLU outputs that are not ReLU(x), checked after the measured call */
  wrong?: number;
  note: string;
}
const rows: Row[] = [];
const ratios: {
  task: string;
  ours: string;
  peer: string;
  bytes: number | null;
  seconds: number | null;
  cpu: number | null;
}[] = [];
const mb = (b: number) => +(b / 1e6).toFixed(3);
const r3 = (x: number) => +x.toFixed(3);

async function peerRow(p: Peer, task: string, args: string[], note: string): Promise<Row> {
  if (!p.built) return { task, system: p.name, MB: null, seconds: null, cpu_seconds: null, note: p.blocked! };
  try {
    const [s, c] = await runDriver(p, args);
    return {
      task,
      system: p.name,
      MB: mb(s.sent + c.sent),
      seconds: r3(Math.max(s.seconds, c.seconds)),
      cpu_seconds: r3(s.cpu_seconds + c.cpu_seconds),
      setup_s: r3(Math.max(s.setup_seconds, c.setup_seconds)),
      setup_MB: mb(s.setup_sent + c.setup_sent),
      ...(s.wrong >= 0 ? { wrong: s.wrong } : {}),
      note,
    };
  } catch (e) {
    return {
      task,
      system: p.name,
      MB: null,
      seconds: null,
      cpu_seconds: null,
      note: `failed: ${(e as Error).message}`,
    };
  }
}
function ratio(task: string, ours: Row, peerR: Row) {
  const q = (x: number | null, y: number | null) => (x != null && y != null && y > 0 ? +(x / y).toFixed(2) : null);
  ratios.push({
    task,
    ours: ours.system,
    peer: peerR.system,
    bytes: q(ours.MB, peerR.MB),
    seconds: q(ours.seconds, peerR.seconds),
    cpu: q(ours.cpu_seconds, peerR.cpu_seconds),
  });
}

const peers = (['sci', 'cheetah'] as const).filter((p) => wanted.has(p)).map(peer);
const reluTask = `ReLU x ${n}, ${ell}-bit`;
if (what.has('relu')) {
  const pairs: [Peer, string][] = peers.map((p) => [p, p.name === 'sci' ? 'ot' : 'silent']);
  for (const [p, ours] of pairs) {
    const pr = await peerRow(
      p,
      reluTask,
      ['op=relu', `n=${n}`, `ell=${ell}`, `k=${shift}`],
      p.name === 'sci'
        ? 'Relu(): millionaires + mux over IKNP/KK13, no truncation'
        : 'Relu(): silent OT (Ferret), no truncation',
    );
    rows.push(pr);
    const c = await reluCost(ours, { n, width: ell + shift, shift, batch: 16384, reps: 1 });
    const our: Row = {
      task: reluTask,
      system: `ours ${ours}`,
      MB: mb(c.total_B * n),
      seconds: r3(((c.offline_us + c.online_us) * n) / 1e6),
      cpu_seconds: r3(((c.offline_cpu_us + c.online_cpu_us) * n) / 1e6),
      setup_s: r3(c.setup_ms / 1e3),
      setup_MB: mb(c.setup_kB * 1024),
      note: `offline + online, width ${ell + shift} shift ${shift} (${ell}-bit comparison), Z_2^64 shares, one thread`,
    };
    rows.push(our);
    ratio(reluTask, our, pr);
  }
}
if (what.has('conv')) {
  const task = `conv ${k}x${k} ${C}->${O} at ${H}x${H}`;
  const ch = peers.find((p) => p.name === 'cheetah');
  let pr: Row | null = null;
  if (ch) {
    pr = await peerRow(
      ch,
      task,
      ['op=conv', `ell=${ell}`, `k=${shift}`, `h=${H}`, `ci=${C}`, `co=${O}`, `f=${k}`],
      `HomConv2DSS (CheetahLinear::conv2d), shared input, Z_2^${ell}`,
    );
    rows.push(pr);
  }
  const one = convLayer(a.conv!);
  const r = await heRun([one.shape], new Map([[one.shape.op, one.layer]]));
  one.layer.dispose();
  const our: Row = {
    task,
    system: 'ours he',
    MB: r3(r.MB),
    seconds: r3(r.wallS),
    cpu_seconds: r3(r.cpuS),
    note: `HePreprocessor, Z_2^64, one thread (server ${r.serverS.toFixed(2)} s, client ${r.clientS.toFixed(2)} s)`,
  };
  rows.push(our);
  if (pr) ratio(task, our, pr);
}

const result = {
  date: new Date().toISOString(),
  args: { n, ell, shift, nt, conv: a.conv },
  peers: peers.map((p) => ({ name: p.name, repo: p.repo, built: p.built, blocked: p.blocked, commits: p.commits })),
  rows,
  ratios,
};
mkdirSync(peersDir, { recursive: true });
writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
if (a.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
else {
  for (const p of peers)
    console.log(`${p.name} (${p.repo}): ${p.built ? p.commits.join(', ') : `NOT BUILT. ${p.blocked}`}`);
  console.table(rows.map(({ note: _, ...r }) => r));
  for (const r of rows) console.log(`  ${r.system}, ${r.task}: ${r.note}`);
  console.log('ratios, ours / peer (bytes both ways; seconds: wall of the call; cpu: both parties):');
  console.table(ratios);
  console.log(`JSON: ${outFile}`);
}
