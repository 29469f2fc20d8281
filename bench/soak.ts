// Soak test of `deepreduce pi serve` (issue 32): the server is its own process (its RSS read from /proc), the clients
// run here (TLS, pinned). Three parts:
//   sequential: N sessions one after another; the server's RSS after the 50th and after the last, failures, latency;
//   concurrent: C clients started together against --max-sessions (default 4), each retrying BUSY (retryBusy, the
//               server's hint); p50/p95 latency, failures;
//   hostile:    an honest client's latency idle, then while each kind of hostile connection is held open against the
//               server: silent TCP connections, hello-only sessions (reconnecting as they are dropped) and invalid
//               WebSocket upgrades (400) in a loop; attackers bind 127.0.0.2 (per-address limits apply to them) and
//               run in processes of their own.
// Prints a human summary on stderr and JSON on stdout (or --out FILE). Clients share this one thread, so concurrent
// latencies include the other clients' compute: run it on a quiet machine for figures.
// Usage: node dist/bench/soak.js (--model DIR | --arch resnet20 [--alpha 0.25 --input 8 --classes 10])
//        [--sequential 100] [--concurrent 8] [--max-sessions 4] [--hostile 50] [--honest 5] [--out FILE]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PROTOCOL, runClient } from '../src/pi/protocol.js';
import { connectChannel, type ClientSecurity } from '../src/pi/node/transport/tcp.js';
import { generateIdentity } from '../src/pi/node/transport/tls.js';
import { retryBusy } from '../src/pi/retry.js';
import { WS_PATH } from '../src/pi/node/web/server.js';

const HELP = `Usage: node dist/bench/soak.js (--model DIR | --arch NAME [--alpha A --input N --classes N]) [options]
  --model DIR         a trained model directory (deepreduce train --out); or --arch for random weights
  --sequential N      sessions one after another (default 100; RSS after the 50th and the last)
  --concurrent N      clients started together against --max-sessions (default 8)
  --max-sessions N    the server's session cap (default 4)
  --per-address N     the server's --max-sessions-per-address (default: the cap, the server's default). The hostile
                      hello-only sessions come from one address: below the cap they cannot hold every slot
  --hostile N         hostile connections of each kind held during the honest client's sessions (default 50)
  --honest K          honest sessions timed idle and under each hostile kind (default 5)
  --attack-pause MS   each hostile loop reopens this long after its connection ends (default 20: with 50 loops, up to
                      2,500 connection attempts per second from the attacker's address)
  --out FILE          write the JSON there (default: stdout)
  --help              this text`;

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    arch: { type: 'string' },
    alpha: { type: 'string' },
    input: { type: 'string' },
    classes: { type: 'string' },
    sequential: { type: 'string', default: '100' },
    concurrent: { type: 'string', default: '8' },
    'max-sessions': { type: 'string', default: '4' },
    'per-address': { type: 'string' },
    hostile: { type: 'string', default: '50' },
    honest: { type: 'string', default: '5' },
    out: { type: 'string' },
    attacker: { type: 'string' },
    'pi-port': { type: 'string' },
    'web-port': { type: 'string' },
    'attack-pause': { type: 'string', default: '20' },
    help: { type: 'boolean' },
  },
});
if (a.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
if (!a.attacker && !a.model === !a.arch) {
  process.stderr.write(`give exactly one of --model DIR and --arch NAME\n${HELP}\n`);
  process.exit(2);
}
const int = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`--${name} must be an integer >= 0, got '${v}'\n`);
    process.exit(2);
  }
  return n;
};
const PER = a['per-address'] === undefined ? null : int('per-address', a['per-address']);
const N = int('sequential', a.sequential),
  C = int('concurrent', a.concurrent),
  MAX = int('max-sessions', a['max-sessions']),
  H = int('hostile', a.hostile),
  K = Math.max(1, int('honest', a.honest)),
  PAUSE = int('attack-pause', a['attack-pause']);

// ---------------------------------------------------------------------------------------- attacker processes
// Each hostile kind runs in its own process (`--attacker KIND`), so that its loops do not stall the honest client's
// event loop here; the three processes still share this machine's cores with the server and the honest client.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function attackers(pi: number, web: number) {
  const fromAttacker = (port: number): Promise<Socket> =>
    new Promise((res, rej) => {
      const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, () => res(s));
      s.once('error', rej);
    });
  /** Keeps `n` connections of one kind open (re-opening what the server drops) until stop() is called. */
  function hold(n: number, open: () => Promise<void>) {
    let on = true;
    const loops = Array.from({ length: n }, async () => {
      while (on) {
        await open().catch(() => {});
        await sleep(PAUSE); // each loop reopens after a pause: 50 loops make up to 50,000 / PAUSE attempts per second
      }
    });
    return {
      stop: async () => {
        on = false;
        await Promise.all(loops);
      },
    };
  }
  const silent = () =>
    fromAttacker(pi).then(
      (s) =>
        new Promise<void>((r) => {
          s.on('error', () => {});
          s.once('close', () => r());
          setTimeout(() => s.destroy(), 30_000).unref();
        }),
    );
  const helloOnly = async () => {
    // A TLS session from the attacker's address: the hello, then nothing (the server drops it at the setup idle deadline).
    const raw = await fromAttacker(pi);
    await new Promise<void>((resolve) => {
      const s = tlsConnect({ socket: raw, rejectUnauthorized: false }, () => {
        const h = Buffer.from(
          JSON.stringify({ protocol: PROTOCOL, preprocess: 'he', relu: 'ot', session: 'ab'.repeat(16) }),
        );
        const len = Buffer.alloc(4);
        len.writeUInt32BE(h.length);
        s.write(Buffer.concat([len, h]));
      });
      s.on('data', () => {});
      s.on('error', () => {});
      s.once('close', () => resolve());
    });
  };
  const badUpgrade = () =>
    new Promise<void>((resolve) => {
      const req = request({
        host: '127.0.0.1',
        port: web,
        path: WS_PATH,
        localAddress: '127.0.0.2',
        rejectUnauthorized: false,
        agent: false,
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': 'bad',
          Origin: `https://127.0.0.1:${web}`,
        },
      });
      req.on('response', (res) => {
        res.resume();
        res.once('end', () => resolve());
      });
      req.on('upgrade', (_r, s) => {
        s.destroy();
        resolve();
      });
      req.on('error', () => resolve());
      req.end();
    });
  return { hold, kinds: { silentTcp: silent, helloOnly, badUpgrades: badUpgrade } } as const;
}
if (a.attacker) {
  const { hold, kinds } = attackers(int('pi-port', a['pi-port']), int('web-port', a['web-port']));
  const open = kinds[a.attacker as keyof typeof kinds];
  if (!open) {
    process.stderr.write(`--attacker must be one of ${Object.keys(kinds).join(', ')}, got '${a.attacker}'\n`);
    process.exit(2);
  }
  const h = hold(H, open);
  process.once('SIGTERM', () => void h.stop().then(() => process.exit(0)));
  process.stdout.write('ready\n');
  await new Promise(() => {}); // until SIGTERM
}

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'dr-soak-'));
const id = await generateIdentity({ commonName: 'soak' });
writeFileSync(join(dir, 'cert.pem'), id.cert);
writeFileSync(join(dir, 'key.pem'), id.key, { mode: 0o600 });
const sec: ClientSecurity = { tls: { pin: id.fingerprint } };
const modelArgs = a.model
  ? ['--model', a.model]
  : [
      '--arch',
      a.arch!,
      ...(a.alpha ? ['--alpha', a.alpha] : []),
      ...(a.input ? ['--input', a.input] : []),
      ...(a.classes ? ['--classes', a.classes] : []),
    ];

const server: ChildProcess = spawn(
  process.execPath,
  [
    cli,
    'pi',
    'serve',
    ...modelArgs,
    '--port',
    '0',
    '--cert',
    join(dir, 'cert.pem'),
    '--key',
    join(dir, 'key.pem'),
    '--web',
    '--web-port',
    '0',
    '--gallery',
    '0',
    '--max-sessions',
    String(MAX),
    ...(PER ? ['--max-sessions-per-address', String(PER)] : []),
    '--metrics-port',
    '0',
  ],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
let err = '';
const ports = await new Promise<{ pi: number; web: number }>((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`pi serve did not start within 120 s:\n${err}`)), 120_000);
  server.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    const p = / on 127\.0\.0\.1:(\d+) over/.exec(err),
      w = /browser client on https:\/\/127\.0\.0\.1:(\d+)\//.exec(err);
    if (p && w) {
      clearTimeout(t);
      resolve({ pi: Number(p[1]), web: Number(w[1]) });
    }
  });
  server.once('exit', (code) => reject(new Error(`pi serve exited with ${code}:\n${err}`)));
});
const stopServer = () => {
  if (server.exitCode === null) server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', stopServer);

/** The server's CPU seconds so far (utime + stime, from /proc). */
const cpuS = (): number => {
  const f = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const rssMB = (): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};
let seed = 1;
const image = (plan: { ops: { size: number }[] }) =>
  Float32Array.from({ length: plan.ops[0]!.size }, () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed / 2 ** 32) * 4 - 2;
  });
const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};

/** One honest session (retrying BUSY); its latency in ms. */
async function honest(): Promise<number> {
  const t0 = performance.now();
  await retryBusy(
    async () => {
      const ch = await connectChannel('127.0.0.1', ports.pi, sec);
      try {
        await runClient(ch, image);
      } finally {
        ch.close();
      }
    },
    { attempts: 20 },
  );
  return performance.now() - t0;
}

const log = (m: string) => process.stderr.write(`[soak] ${m}\n`);
log(`server on ${ports.pi} (page ${ports.web}); sequential ${N}`);
// ---------------------------------------------------------------------------------------- sequential
const rssStart = rssMB();
const seq = {
  sessions: N,
  failures: 0,
  errors: [] as string[],
  rssStartMB: rssStart,
  rssAfter50MB: NaN,
  rssAfterLastMB: NaN,
  latencyMs: [] as number[],
};
for (let i = 0; i < N; i++) {
  try {
    seq.latencyMs.push(await honest());
  } catch (e) {
    seq.failures++;
    if (seq.errors.length < 5) seq.errors.push((e as Error).message);
  }
  if (i === 49) seq.rssAfter50MB = rssMB();
}
seq.rssAfterLastMB = rssMB();

// ---------------------------------------------------------------------------------------- concurrent
log(`concurrent ${C}`);
const conc = {
  clients: C,
  maxSessions: MAX,
  failures: 0,
  errors: [] as string[],
  p50Ms: NaN,
  p95Ms: NaN,
  latencyMs: [] as number[],
};
await Promise.all(
  Array.from({ length: C }, () =>
    honest().then(
      (ms) => {
        conc.latencyMs.push(ms);
      },
      (e: Error) => {
        conc.failures++;
        if (conc.errors.length < 5) conc.errors.push(e.message);
      },
    ),
  ),
);
conc.p50Ms = pct(conc.latencyMs, 0.5);
conc.p95Ms = pct(conc.latencyMs, 0.95);

// ---------------------------------------------------------------------------------------- hostile
log(`hostile ${H} per kind`);
const timeHonest = async () => {
  const xs: number[] = [];
  const errs: string[] = [];
  for (let i = 0; i < K; i++) {
    try {
      xs.push(await honest());
    } catch (e) {
      errs.push((e as Error).message);
    }
  }
  return { p50Ms: pct(xs, 0.5), p95Ms: pct(xs, 0.95), failures: errs.length, errors: errs.slice(0, 3) };
};
/** Starts the attacker process of one kind; resolves once its loops run, with a stop(). */
async function attack(kind: string) {
  const p = spawn(
    process.execPath,
    [
      fileURLToPath(import.meta.url),
      '--attacker',
      kind,
      '--pi-port',
      String(ports.pi),
      '--web-port',
      String(ports.web),
      '--hostile',
      String(H),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    p.stdout!.once('data', () => resolve());
    p.once('exit', (c) => reject(new Error(`attacker ${kind} exited with ${c}`)));
  });
  return {
    stop: () =>
      new Promise<void>((r) => {
        p.removeAllListeners('exit');
        p.once('exit', () => r());
        p.kill('SIGTERM');
      }),
  };
}
/** Honest sessions, with the server's CPU use over them (seconds per wall second; 2 is both cores). */
async function timed() {
  const c0 = cpuS(),
    t0 = performance.now();
  const r = await timeHonest();
  return { ...r, serverCpuPerS: (cpuS() - c0) / ((performance.now() - t0) / 1e3) };
}
const hostile: Record<string, unknown> = { perKind: H, attackPauseMs: PAUSE, idle: await timed() };
for (const kind of ['silentTcp', 'helloOnly', 'badUpgrades']) {
  log(`  ${kind}`);
  const h = await attack(kind);
  await sleep(500);
  const rss0 = rssMB();
  const r = await timed();
  await h.stop();
  hostile[kind] = { ...r, serverRssMB: rssMB(), serverRssBeforeMB: rss0 };
}

const result = {
  server: { maxSessions: MAX, maxSessionsPerAddress: PER ?? MAX, model: a.model ?? a.arch },
  sequential: { ...seq, p50Ms: pct(seq.latencyMs, 0.5), p95Ms: pct(seq.latencyMs, 0.95), latencyMs: undefined },
  concurrent: { ...conc, latencyMs: undefined },
  hostile,
};
const f = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const hk = (k: string) => hostile[k] as { p50Ms: number; p95Ms: number; failures: number; serverCpuPerS: number };
const kind = (k: string, label: string) =>
  `${label} ${f(hk(k).p50Ms)} ms (${(hk(k).p50Ms / hk('idle').p50Ms).toFixed(2)}x idle, server CPU ${hk(k).serverCpuPerS.toFixed(2)}/s)`;
process.stderr.write(
  `soak of pi serve (${result.server.model}, --max-sessions ${MAX})\n` +
    `  sequential: ${N} sessions, ${seq.failures} failed; server RSS ${f(rssStart)} MB at start, ${f(seq.rssAfter50MB)} MB after the 50th, ${f(seq.rssAfterLastMB)} MB after the last; latency p50 ${f(result.sequential.p50Ms)} ms\n` +
    `  concurrent: ${C} clients against ${MAX} slots (retrying BUSY), ${conc.failures} failed; latency p50 ${f(conc.p50Ms)} ms, p95 ${f(conc.p95Ms)} ms\n` +
    `  hostile (${H} of each kind, from 127.0.0.2, reopening after ${PAUSE} ms): honest p50 idle ${f(hk('idle').p50Ms)} ms (server CPU ${hk('idle').serverCpuPerS.toFixed(2)}/s); ` +
    `${kind('silentTcp', 'silent TCP')}; ${kind('helloOnly', 'hello-only')}; ${kind('badUpgrades', 'bad upgrades')}; ` +
    `honest failures ${['silentTcp', 'helloOnly', 'badUpgrades'].map((k) => hk(k).failures).join('/')}\n`,
);
const json = `${JSON.stringify(result, null, 2)}\n`;
if (a.out) writeFileSync(a.out, json);
else process.stdout.write(json);
stopServer();
process.exit(0);
