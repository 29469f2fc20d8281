// Private-inference latency, bytes, flights, CPU time and memory for ResNet18 at 32x32 (3 channels, 100 classes,
// random weights): the full ReLU mask and the DeepReDuce presets, per linear-layer preprocessing (`--preprocess he`:
// client and server only; `dealer`: a trusted third party), ReLU protocol (`--relu gc,ot`), link profile (`--link
// none,lan,wan`: each party shapes what it receives, so both directions are shaped; the dealer's links are not) and
// transport (`--transport tls,insecure`), all in one table. Each party is its own process on this machine: the server
// (`deepreduce pi serve`, one per combination so that its peak memory is that combination's), the client (this
// script with --client, one process per session) and, for dealer, the dealer (`deepreduce pi dealer`). TLS is 1.3
// with fresh identities (the client pins the server's certificate; the dealer admits only the server's certificate);
// plain TCP (`insecure`) only between client and server. Transports alternate within each of `--repeat`
// repetitions (medians), so that drift of the machine hits both alike. Peak memory per party is each process's peak
// RSS (/proc/PID/status VmHWM for the server and the dealer; the client's own maxRSS); CPU time per party from
// /proc/PID/stat (server, dealer) and process.cpuUsage (client).
// Usage: node dist/bench/pi.js [--configs C100_12K,C100_115K,C100_230K,full] [--preprocess he,dealer] [--relu gc,ot,ot-online]
//        [--link none,lan,wan] [--transport tls,insecure] [--repeat 1] [--out FILE.json] [--calibrate FILE]
//        [--profile DIR: V8 CPU profiles of every server and client process into DIR (open in Chrome DevTools)]
//        [--worker-threads N: the server's worker threads (pi serve --worker-threads; default its own: cores - 1)]
//        [--v8-concurrent-marking: the parties keep V8's concurrent marking (src/util/v8.ts turns it off)]
// Defaults: every config, he, gc and ot, every link profile, TLS.
import './lib/help.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/util/fs.js';
import { calibrate, piReport, type PiReport } from '../src/pi/node/bench.js';
import { connectChannel, type ClientSecurity } from '../src/pi/node/transport/tcp.js';
import { generateIdentity, readPem } from '../src/pi/node/transport/tls.js';
import { parseLink, parseLinks, shapeChannel } from '../src/pi/transport/shaping.js';
import { runClient } from '../src/pi/protocol.js';
import { tcpDealerLink } from '../src/pi/node/dealer.js';
import { PREPROCESSORS } from '../src/pi/linear/index.js';
import { makeReluProtocol } from '../src/pi/relu/registry.js';
import { applyV8Settings } from '../src/util/v8.js';

const { values: a } = parseArgs({
  options: {
    configs: { type: 'string', default: 'C100_12K,C100_115K,C100_230K,full' },
    preprocess: { type: 'string', default: 'he' },
    relu: { type: 'string', default: 'gc,ot' },
    link: { type: 'string', default: 'none,lan,wan' },
    transport: { type: 'string', default: 'tls' },
    repeat: { type: 'string', default: '1' },
    out: { type: 'string' },
    calibrate: { type: 'string' },
    profile: { type: 'string' },
    'worker-threads': { type: 'string' },
    // child mode: run the client of one session and print { report, peakMB, cpuMs }
    client: { type: 'string' },
    pin: { type: 'string' },
    insecure: { type: 'boolean' },
    dealer: { type: 'string' },
    'dealer-cert': { type: 'string' },
    seed: { type: 'string', default: '1' },
    'v8-concurrent-marking': { type: 'boolean' },
  },
});

// The parties inherit the choice through the environment (applyV8Settings reads it in each process).
if (a['v8-concurrent-marking']) process.env.DEEPREDUCE_V8_CONCURRENT_MARKING = '1';
applyV8Settings();

const main = join(dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const nodeFlags = a.profile ? ['--cpu-prof', `--cpu-prof-dir=${a.profile}`] : [];
const hostPort = (s: string) => {
  const [h, p] = s.split(':');
  return { host: h!, port: Number(p) };
};

if (a.client) {
  const { host, port } = hostPort(a.client);
  let s = Number(a.seed) + 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) + 0.5) / 4294967296;
  const image = (plan: { ops: { size: number }[] }) =>
    Float32Array.from(
      { length: plan.ops[0]!.size },
      () => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd()),
    );
  const security: ClientSecurity = a.insecure ? { insecure: true } : { tls: { pin: a.pin! } };
  const link = parseLink(a.link!);
  const cpu0 = process.cpuUsage();
  const ch = shapeChannel(await connectChannel(host, port, security), link);
  const dealer = a.dealer ? hostPort(a.dealer) : null;
  const dl = dealer
    ? tcpDealerLink(dealer.host, dealer.port, { ca: readPem(a['dealer-cert']!, 'certificate', '--dealer-cert') })
    : null;
  // timings: the server (run with --report-timings below) sends its own per-op times, which the report needs.
  const r = await runClient(ch, image, {
    preprocess: a.preprocess,
    relu: a.relu,
    timings: true,
    ...(dl ? { dealer: dl } : {}),
  });
  ch.close();
  const u = process.cpuUsage(cpu0);
  const report = piReport(r, { relu: a.relu!, link, preprocess: a.preprocess!, transport: a.insecure ? 'tcp' : 'tls' });
  process.stdout.write(
    `${JSON.stringify({ report, peakMB: process.resourceUsage().maxRSS / 1024, cpuMs: (u.user + u.system) / 1e3 })}\n`,
  );
  process.exit(0);
}

const transports = a.transport!.split(',');
for (const l of transports)
  if (l !== 'tls' && l !== 'insecure') throw new Error(`--transport: '${l}' is neither tls nor insecure`);
const preps = a.preprocess!.split(',');
for (const p of preps)
  if (!(PREPROCESSORS as readonly string[]).includes(p))
    throw new Error(`--preprocess: '${p}' is not one of ${PREPROCESSORS.join(', ')}`);
const relus = a.relu!.split(',').map((r) => makeReluProtocol(r.trim()).name);
// Profiles by their spec, as the CLI takes them (a custom BANDWIDTH,RTT keeps its two parts together).
const linkSpecs = parseLinks(a.link!).map((l) => l?.name ?? 'none');
const repeat = Number(a.repeat);
if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat must be a positive integer, got '${a.repeat}'`);
const median = (v: number[]) => {
  const s = [...v].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** Starts a CLI process that prints "... on HOST:PORT" to stderr when it listens; resolves with it and the port. */
async function listening(args: string[], what: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...nodeFlags, main, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((res, rej) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d;
      const m = / on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) res({ child, port: Number(m[1]) });
    });
    child.on('close', (code) => rej(new Error(`${what} exited with ${code} before listening:\n${err}`)));
  });
}

/** Peak resident memory of a live process (Linux), MB. */
function peakMB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU time (user + system) of a live process so far (Linux, clock ticks of 10 ms), ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

function runChild(args: string[]): Promise<string> {
  const child = spawn(process.execPath, [...nodeFlags, fileURLToPath(import.meta.url), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '',
    err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d;
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d;
  });
  return new Promise((res, rej) =>
    child.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`client exited with ${code}:\n${err}`)))),
  );
}

/** A fresh key and certificate in `dir` (as `deepreduce pi keygen` makes them). */
async function identity(dir: string, name: string): Promise<{ cert: string; key: string; pin: string }> {
  const id = await generateIdentity();
  const cert = join(dir, `${name}.cert.pem`),
    key = join(dir, `${name}.key.pem`);
  writeFileAtomic(cert, id.cert);
  writeFileAtomic(key, id.key, 0o600);
  return { cert, key, pin: id.fingerprint };
}

type Run = { setup: number; offline: number; online: number; cpuClient: number; cpuServer: number; cpuDealer: number };
interface Result {
  config: string;
  preprocess: string;
  relu: string;
  link: string;
  transport: string;
  report: PiReport;
  runs: Run[];
  serverPeakMB: number;
  clientPeakMB: number;
  dealerPeakMB: number | null;
}
const results: Result[] = [];
const dir = mkdtempSync(join(tmpdir(), 'pi-bench-'));
try {
  const server = await identity(dir, 'server'),
    dealerId = await identity(dir, 'dealer');
  for (const cfg of a.configs!.split(',')) {
    const model = cfg === 'full' ? ['--arch', 'resnet18'] : ['--preset', cfg];
    const spec = [...model, '--input', '32', '--classes', '100', '--seed', '0'];
    for (const prep of preps) {
      const dealerProcs: ChildProcess[] = [];
      try {
        let dealer: { child: ChildProcess; port: number } | null = null;
        if (prep === 'dealer') {
          dealer = await listening(
            [
              'pi',
              'dealer',
              ...spec,
              '--port',
              '0',
              '--cert',
              dealerId.cert,
              '--key',
              dealerId.key,
              '--server-cert',
              server.cert,
            ],
            'pi dealer',
          );
          dealerProcs.push(dealer.child);
        }
        const dealerFlags = dealer ? ['--dealer', `127.0.0.1:${dealer.port}`, '--dealer-cert', dealerId.cert] : [];
        for (const link of linkSpecs) {
          for (const relu of relus) {
            const procs: ChildProcess[] = [];
            try {
              // One server per transport (and per protocol and link: its peak memory is theirs); it presents its
              // certificate to the dealer on either transport.
              const servers = new Map<string, { child: ChildProcess; port: number }>();
              for (const tr of transports) {
                const tls = tr === 'tls' ? [] : ['--insecure'];
                const s = await listening(
                  [
                    'pi',
                    'serve',
                    ...spec,
                    '--port',
                    '0',
                    '--report-timings',
                    '--cert',
                    server.cert,
                    '--key',
                    server.key,
                    ...tls,
                    '--preprocess',
                    prep,
                    '--relu',
                    relu,
                    '--link',
                    link,
                    ...dealerFlags,
                    ...(a['worker-threads'] ? ['--worker-threads', a['worker-threads']] : []),
                  ],
                  'pi serve',
                );
                procs.push(s.child);
                servers.set(tr, s);
              }
              const by = new Map(
                transports.map((t) => [t, { report: null as PiReport | null, runs: [] as Run[], clientPeakMB: 0 }]),
              );
              for (let k = 0; k < repeat; k++) {
                for (const tr of transports) {
                  const s = servers.get(tr)!,
                    e = by.get(tr)!;
                  const sc0 = cpuMs(s.child.pid!),
                    dc0 = dealer ? cpuMs(dealer.child.pid!) : 0;
                  const trustFlags = tr === 'tls' ? ['--pin', server.pin] : ['--insecure'];
                  const out = JSON.parse(
                    await runChild([
                      '--client',
                      `127.0.0.1:${s.port}`,
                      ...trustFlags,
                      '--preprocess',
                      prep,
                      '--relu',
                      relu,
                      '--link',
                      link,
                      ...dealerFlags,
                    ]),
                  ) as { report: PiReport; peakMB: number; cpuMs: number };
                  const p = out.report.phases;
                  const run: Run = {
                    setup: p.setup.ms,
                    offline: p.offline.ms,
                    online: p.online.ms,
                    cpuClient: out.cpuMs,
                    cpuServer: cpuMs(s.child.pid!) - sc0,
                    cpuDealer: dealer ? cpuMs(dealer.child.pid!) - dc0 : 0,
                  };
                  e.report = out.report;
                  e.runs.push(run);
                  e.clientPeakMB = Math.max(e.clientPeakMB, out.peakMB);
                  process.stderr.write(
                    `${cfg} ${prep} ${relu} ${link} ${tr} #${k + 1}: ${out.report.plan.relus} ReLUs, setup ${(p.setup.ms / 1e3).toFixed(2)} s, offline ${(p.offline.ms / 1e3).toFixed(2)} s, ` +
                      `online ${(p.online.ms / 1e3).toFixed(2)} s, CPU client ${(run.cpuClient / 1e3).toFixed(2)} s, server ${(run.cpuServer / 1e3).toFixed(2)} s${dealer ? `, dealer ${(run.cpuDealer / 1e3).toFixed(2)} s` : ''}\n`,
                  );
                }
              }
              for (const [tr, e] of by) {
                results.push({
                  config: cfg,
                  preprocess: prep,
                  relu,
                  link,
                  transport: tr,
                  report: e.report!,
                  runs: e.runs,
                  clientPeakMB: e.clientPeakMB,
                  serverPeakMB: peakMB(servers.get(tr)!.child.pid!),
                  dealerPeakMB: dealer ? peakMB(dealer.child.pid!) : null,
                });
              }
            } finally {
              for (const c of procs) c.kill('SIGTERM');
            }
          }
        }
      } finally {
        for (const c of dealerProcs) c.kill('SIGTERM');
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const gb = (b: number) => +(b / 1e9).toFixed(3);
const same = (x: Result, y: { preprocess: string; relu: string; link: string; transport: string }) =>
  x.preprocess === y.preprocess && x.relu === y.relu && x.link === y.link && x.transport === y.transport;
const rows = results.map((res) => {
  const { config, preprocess, relu, link, transport, report: r, runs, serverPeakMB, clientPeakMB, dealerPeakMB } = res;
  const off = r.phases.offline,
    on = r.phases.online,
    st = r.phases.setup,
    lin = r.linear;
  const med = (k: keyof Run) => median(runs.map((x) => x[k])) / 1e3;
  const full = results.find((x) => x.config === 'full' && same(x, res));
  const bytes = (x: { cToS: number; sToC: number }) => x.cToS + x.sToC;
  return {
    config,
    prep: preprocess,
    relu,
    link,
    transport,
    relus: r.plan.relus,
    total_s: +(med('setup') + med('offline') + med('online')).toFixed(2),
    setup_s: +med('setup').toFixed(2),
    offline_s: +med('offline').toFixed(2),
    online_s: +med('online').toFixed(3),
    cpu_client_s: +med('cpuClient').toFixed(2),
    cpu_server_s: +med('cpuServer').toFixed(2),
    cpu_dealer_s: dealerPeakMB === null ? null : +med('cpuDealer').toFixed(2),
    total_GB: gb(bytes(st) + bytes(off) + bytes(on)),
    offline_GB: gb(bytes(off)),
    prep_GB: gb(st.prep + off.prep + on.prep),
    online_MB: +(bytes(on) / 1e6).toFixed(1),
    flights: st.rounds + off.rounds + on.rounds,
    onlineFlights: on.rounds,
    // the ReLU ops' bytes (offline + online) per ReLU
    bytesPerRelu: r.plan.relus
      ? Math.round(
          r.ops.filter((o) => o.kind === 'relu').reduce((s, o) => s + bytes(o.offline) + bytes(o.online), 0) /
            r.plan.relus,
        )
      : null,
    // the linear layers' offline steps (last run): each party's HE compute and the HE traffic (public key included)
    HE_client_s: +(lin.clientMs / 1e3).toFixed(2),
    HE_server_s: +(lin.serverMs / 1e3).toFixed(2),
    HE_MB: +((lin.cToS + lin.sToC) / 1e6).toFixed(1),
    linear_wall_s: +(lin.wallMs / 1e3).toFixed(2),
    server_peak_MB: Math.round(serverPeakMB),
    client_peak_MB: Math.round(clientPeakMB),
    dealer_peak_MB: dealerPeakMB === null ? null : Math.round(dealerPeakMB),
    speedupOnline: full
      ? +(median(full.runs.map((x) => x.online)) / median(runs.map((x) => x.online))).toFixed(2)
      : null,
  };
});
console.table(rows);
if (transports.length === 2) {
  const key = (r: (typeof rows)[number]) => `${r.config} ${r.prep} ${r.relu} ${r.link}`;
  const overhead = [...new Set(rows.map(key))].map((k) => {
    const t = rows.find((r) => key(r) === k && r.transport === 'tls')!,
      p = rows.find((r) => key(r) === k && r.transport === 'insecure')!;
    const pct = (x: number, y: number) => +((100 * (x - y)) / y).toFixed(1);
    const cpu = (r: typeof t) => r.cpu_client_s + r.cpu_server_s + (r.cpu_dealer_s ?? 0);
    return {
      config: t.config,
      prep: t.prep,
      relu: t.relu,
      link: t.link,
      offline_pct: pct(t.offline_s, p.offline_s),
      online_pct: pct(t.online_s, p.online_s),
      setup_pct: pct(t.setup_s, p.setup_s),
      cpu_pct: pct(cpu(t), cpu(p)),
    };
  });
  process.stdout.write(
    'TLS overhead (median TLS wall / CPU time of all parties vs plain TCP between client and server, %):\n',
  );
  console.table(overhead);
}
if (a.out)
  writeFileAtomic(
    a.out,
    `${JSON.stringify({ date: new Date().toISOString(), serverWorkerThreads: a['worker-threads'] ?? 'default (cores - 1)', v8ConcurrentMarking: !!a['v8-concurrent-marking'], loadAverage: loadavg(), rows, reports: results }, null, 2)}\n`,
  );
// The reduce cost model: per ReLU protocol, from the unshaped runs of the default preprocessing (he, if run) over the
// first transport (calibrate() refuses shaped runs: their times include the link).
const calPrep = preps.includes('he') ? 'he' : preps[0];
if (a.calibrate)
  writeFileAtomic(
    a.calibrate,
    `${JSON.stringify(calibrate(results.filter((r) => r.preprocess === calPrep && r.transport === transports[0] && r.link === 'none').map((r) => r.report)), null, 2)}\n`,
  );
