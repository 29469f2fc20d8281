// Private-inference latency, bytes, CPU time and memory for ResNet18 at 32x32 (3 channels, 100 classes, random
// weights): the full ReLU mask and the DeepReDuce presets, each with `--preprocess he` (client and server only) and
// `dealer` (a trusted third party) in the same run. Each party is its own process on this machine: the server
// (`deepreduce pi serve`), the client (this script with --client) and, for dealer, the dealer (`deepreduce pi
// dealer`). Links are loopback TLS 1.3 with fresh identities (the client pins the server's certificate; the dealer
// admits only the server's certificate) by default; `--links tls,insecure` also runs plain TCP between client and
// server (the dealer's links stay TLS), alternating within each of `--repeat` repetitions (medians), for the cost of
// TLS. Peak memory per party is each process's peak RSS (/proc/PID/status VmHWM for the server and the dealer, over
// all their sessions; the client's own maxRSS); CPU time per party from /proc/PID/stat (server, dealer) and
// process.cpuUsage (client).
// Usage: node dist/bench/pi.js [--configs full,C100_230K,C100_115K,C100_12K] [--preprocess he,dealer]
//        [--links tls] [--repeat 1] [--out FILE.json] [--calibrate FILE]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/util/fs.js';
import { calibrate, piReport, type PiReport } from '../src/pi/bench.js';
import { connectChannel, type ClientSecurity } from '../src/pi/transport/tcp.js';
import { generateIdentity, readPem } from '../src/pi/transport/tls.js';
import { runClient } from '../src/pi/protocol.js';
import { tcpDealerLink } from '../src/pi/linear/dealer/dealer.js';
import { PREPROCESSORS } from '../src/pi/linear/index.js';

const { values: a } = parseArgs({
  options: {
    configs: { type: 'string', default: 'C100_12K,C100_115K,C100_230K,full' }, preprocess: { type: 'string', default: 'he,dealer' },
    links: { type: 'string', default: 'tls' }, repeat: { type: 'string', default: '1' }, out: { type: 'string' }, calibrate: { type: 'string' },
    // child mode: run the client of one session and print { report, peakMB, cpuMs }
    client: { type: 'string' }, pin: { type: 'string' }, insecure: { type: 'boolean' }, dealer: { type: 'string' }, 'dealer-cert': { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
});

const main = join(dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const hostPort = (s: string) => { const [h, p] = s.split(':'); return { host: h!, port: Number(p) }; };

if (a.client) {
  const { host, port } = hostPort(a.client);
  let s = Number(a.seed) + 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) + 0.5) / 4294967296;
  const image = (plan: { ops: { size: number }[] }) => Float32Array.from({ length: plan.ops[0]!.size }, () => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd()));
  const security: ClientSecurity = a.insecure ? { insecure: true } : { tls: { pin: a.pin! } };
  const cpu0 = process.cpuUsage();
  const ch = await connectChannel(host, port, security);
  const dealer = a.dealer ? hostPort(a.dealer) : null;
  const link = dealer ? tcpDealerLink(dealer.host, dealer.port, { ca: readPem(a['dealer-cert']!, 'certificate', '--dealer-cert') }) : null;
  const r = await runClient(ch, image, { preprocess: a.preprocess, ...(link ? { dealer: link } : {}) });
  ch.close();
  const u = process.cpuUsage(cpu0);
  process.stdout.write(`${JSON.stringify({ report: piReport(r), peakMB: process.resourceUsage().maxRSS / 1024, cpuMs: (u.user + u.system) / 1e3 })}\n`);
  process.exit(0);
}

const links = a.links!.split(',');
for (const l of links) if (l !== 'tls' && l !== 'insecure') throw new Error(`--links: '${l}' is neither tls nor insecure`);
const preps = a.preprocess!.split(',');
for (const p of preps) if (!(PREPROCESSORS as readonly string[]).includes(p)) throw new Error(`--preprocess: '${p}' is not one of ${PREPROCESSORS.join(', ')}`);
const repeat = Number(a.repeat);
if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat must be a positive integer, got '${a.repeat}'`);
const median = (v: number[]) => { const s = [...v].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

/** Starts a CLI process that prints "... on HOST:PORT" to stderr when it listens; resolves with it and the port. */
async function listening(args: string[], what: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
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
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.on('data', (d: Buffer) => { out += d; });
  child.stderr.on('data', (d: Buffer) => { err += d; });
  return new Promise((res, rej) => child.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`client exited with ${code}:\n${err}`)))));
}

/** A fresh key and certificate in `dir` (as `deepreduce pi keygen` makes them). */
async function identity(dir: string, name: string): Promise<{ cert: string; key: string; pin: string }> {
  const id = await generateIdentity();
  const cert = join(dir, `${name}.cert.pem`), key = join(dir, `${name}.key.pem`);
  writeFileAtomic(cert, id.cert);
  writeFileAtomic(key, id.key, 0o600);
  return { cert, key, pin: id.fingerprint };
}

type Run = { setup: number; offline: number; online: number; cpuClient: number; cpuServer: number; cpuDealer: number };
interface Result { config: string; preprocess: string; link: string; report: PiReport; runs: Run[]; serverPeakMB: number; clientPeakMB: number; dealerPeakMB: number | null }
const results: Result[] = [];
const dir = mkdtempSync(join(tmpdir(), 'pi-bench-'));
try {
  const server = await identity(dir, 'server'), dealerId = await identity(dir, 'dealer');
  for (const cfg of a.configs!.split(',')) {
    const model = cfg === 'full' ? ['--arch', 'resnet18'] : ['--preset', cfg];
    const spec = [...model, '--input', '32', '--classes', '100', '--seed', '0'];
    for (const prep of preps) {
      const procs: ChildProcess[] = [];
      try {
        let dealer: { child: ChildProcess; port: number } | null = null;
        if (prep === 'dealer') {
          dealer = await listening(['pi', 'dealer', ...spec, '--port', '0', '--cert', dealerId.cert, '--key', dealerId.key, '--server-cert', server.cert], 'pi dealer');
          procs.push(dealer.child);
        }
        const dealerFlags = dealer ? ['--dealer', `127.0.0.1:${dealer.port}`, '--dealer-cert', dealerId.cert] : [];
        // One server per link; the server presents its certificate to the dealer on either.
        const servers = new Map<string, { child: ChildProcess; port: number }>();
        for (const link of links) {
          const tls = link === 'tls' ? [] : ['--insecure'];
          const s = await listening(['pi', 'serve', ...spec, '--port', '0', '--cert', server.cert, '--key', server.key, ...tls, '--preprocess', prep, ...dealerFlags], 'pi serve');
          procs.push(s.child);
          servers.set(link, s);
        }
        const by = new Map(links.map((l) => [l, { report: null as PiReport | null, runs: [] as Run[], clientPeakMB: 0 }]));
        // Links alternate within each repetition so that drift of the machine hits both alike.
        for (let k = 0; k < repeat; k++) {
          for (const link of links) {
            const s = servers.get(link)!, e = by.get(link)!;
            const sc0 = cpuMs(s.child.pid!), dc0 = dealer ? cpuMs(dealer.child.pid!) : 0;
            const trustFlags = link === 'tls' ? ['--pin', server.pin] : ['--insecure'];
            const out = JSON.parse(await runChild(['--client', `127.0.0.1:${s.port}`, ...trustFlags, '--preprocess', prep, ...(dealer ? ['--dealer', `127.0.0.1:${dealer.port}`, '--dealer-cert', dealerId.cert] : [])])) as { report: PiReport; peakMB: number; cpuMs: number };
            const p = out.report.phases;
            const run: Run = {
              setup: p.setup.ms, offline: p.offline.ms, online: p.online.ms,
              cpuClient: out.cpuMs, cpuServer: cpuMs(s.child.pid!) - sc0, cpuDealer: dealer ? cpuMs(dealer.child.pid!) - dc0 : 0,
            };
            e.report = out.report;
            e.runs.push(run);
            e.clientPeakMB = Math.max(e.clientPeakMB, out.peakMB);
            process.stderr.write(`${cfg} ${prep} ${link} #${k + 1}: ${out.report.plan.relus} ReLUs, setup ${(p.setup.ms / 1e3).toFixed(2)} s, offline ${(p.offline.ms / 1e3).toFixed(2)} s, ` +
              `online ${(p.online.ms / 1e3).toFixed(2)} s, CPU client ${(run.cpuClient / 1e3).toFixed(2)} s, server ${(run.cpuServer / 1e3).toFixed(2)} s${dealer ? `, dealer ${(run.cpuDealer / 1e3).toFixed(2)} s` : ''}\n`);
          }
        }
        for (const [link, e] of by) {
          results.push({
            config: cfg, preprocess: prep, link, report: e.report!, runs: e.runs, clientPeakMB: e.clientPeakMB,
            serverPeakMB: peakMB(servers.get(link)!.child.pid!), dealerPeakMB: dealer ? peakMB(dealer.child.pid!) : null,
          });
        }
      } finally {
        for (const c of procs) c.kill('SIGTERM');
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const gb = (b: number) => +(b / 1e9).toFixed(3);
const rows = results.map(({ config, preprocess, link, report: r, runs, serverPeakMB, clientPeakMB, dealerPeakMB }) => {
  const off = r.phases.offline, on = r.phases.online, st = r.phases.setup, lin = r.linear;
  const med = (k: keyof Run) => median(runs.map((x) => x[k])) / 1e3;
  const full = results.find((x) => x.config === 'full' && x.preprocess === preprocess && x.link === link);
  return {
    config, prep: preprocess, link, relus: r.plan.relus,
    setup_s: +med('setup').toFixed(2), offline_s: +med('offline').toFixed(2), online_s: +med('online').toFixed(3),
    cpu_client_s: +med('cpuClient').toFixed(2), cpu_server_s: +med('cpuServer').toFixed(2), cpu_dealer_s: dealerPeakMB === null ? null : +med('cpuDealer').toFixed(2),
    offline_GB: gb(off.cToS + off.sToC), prep_GB: gb(st.prep + off.prep + on.prep), online_MB: +((on.cToS + on.sToC) / 1e6).toFixed(1), onlineRounds: on.rounds,
    // the linear layers' offline steps (last run): each party's HE compute and the HE traffic (public key included)
    HE_client_s: +(lin.clientMs / 1e3).toFixed(2), HE_server_s: +(lin.serverMs / 1e3).toFixed(2), HE_MB: +((lin.cToS + lin.sToC) / 1e6).toFixed(1),
    linear_wall_s: +(lin.wallMs / 1e3).toFixed(2),
    server_peak_MB: Math.round(serverPeakMB), client_peak_MB: Math.round(clientPeakMB), dealer_peak_MB: dealerPeakMB === null ? null : Math.round(dealerPeakMB),
    speedupOnline: full ? +(median(full.runs.map((x) => x.online)) / median(runs.map((x) => x.online))).toFixed(2) : null,
  };
});
console.table(rows);
if (links.length === 2) {
  const overhead = [...new Set(rows.map((r) => `${r.config} ${r.prep}`))].map((key) => {
    const t = rows.find((r) => `${r.config} ${r.prep}` === key && r.link === 'tls')!, p = rows.find((r) => `${r.config} ${r.prep}` === key && r.link === 'insecure')!;
    const pct = (x: number, y: number) => +((100 * (x - y)) / y).toFixed(1);
    const cpu = (r: typeof t) => r.cpu_client_s + r.cpu_server_s + (r.cpu_dealer_s ?? 0);
    return { config: t.config, prep: t.prep, offline_pct: pct(t.offline_s, p.offline_s), online_pct: pct(t.online_s, p.online_s), setup_pct: pct(t.setup_s, p.setup_s), cpu_pct: pct(cpu(t), cpu(p)) };
  });
  process.stdout.write('TLS overhead (median TLS wall / CPU time of all parties vs plain TCP between client and server, %):\n');
  console.table(overhead);
}
if (a.out) writeFileAtomic(a.out, `${JSON.stringify({ date: new Date().toISOString(), rows, reports: results }, null, 2)}\n`);
// The reduce cost model is calibrated on the default protocol: he (if run) over the first link.
const calPrep = preps.includes('he') ? 'he' : preps[0];
if (a.calibrate) writeFileAtomic(a.calibrate, `${JSON.stringify(calibrate(results.filter((r) => r.preprocess === calPrep && r.link === links[0]).map((r) => r.report)), null, 2)}\n`);
