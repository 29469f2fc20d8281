// Private-inference latency, bytes and memory for ResNet18 at 32x32 (3 channels, 100 classes, random weights): the
// full ReLU mask and the DeepReDuce presets, each with `--preprocess he` (client and server only) and `dealer` (a
// trusted third party) in the same run. Each party is its own process on this machine, over loopback TCP: the server
// (`deepreduce pi serve`), the client (this script with --client) and, for dealer, the dealer (`deepreduce pi
// dealer`); peak memory per party is each process's peak RSS (the server's from /proc/PID/status VmHWM).
// Usage: node dist/bench/pi.js [--configs full,C100_230K,C100_115K,C100_12K] [--preprocess he,dealer]
//        [--out FILE.json] [--calibrate FILE]
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/util/fs.js';
import { calibrate, piReport, type PiReport } from '../src/pi/bench.js';
import { connectTcp } from '../src/pi/transport/tcp.js';
import { runClient } from '../src/pi/protocol.js';
import { tcpDealerLink } from '../src/pi/linear/dealer/dealer.js';

const { values: a } = parseArgs({
  options: {
    configs: { type: 'string', default: 'C100_12K,C100_115K,C100_230K,full' }, preprocess: { type: 'string', default: 'he,dealer' },
    out: { type: 'string' }, calibrate: { type: 'string' },
    // child mode: run the client of one session and print { report, peakMB }
    client: { type: 'string' }, dealer: { type: 'string' }, seed: { type: 'string', default: '1' },
  },
});

const main = join(dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const hostPort = (s: string) => { const [h, p] = s.split(':'); return { host: h!, port: Number(p) }; };

if (a.client) {
  const { host, port } = hostPort(a.client);
  let s = Number(a.seed) + 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) + 0.5) / 4294967296;
  const image = (plan: { ops: { size: number }[] }) => Float32Array.from({ length: plan.ops[0]!.size }, () => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd()));
  const ch = await connectTcp(host, port);
  const dealer = a.dealer ? hostPort(a.dealer) : null;
  const r = await runClient(ch, image, { preprocess: a.preprocess, ...(dealer ? { dealer: tcpDealerLink(dealer.host, dealer.port) } : {}) });
  ch.close();
  process.stdout.write(`${JSON.stringify({ report: piReport(r), peakMB: process.resourceUsage().maxRSS / 1024 })}\n`);
  process.exit(0);
}

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

function runChild(args: string[]): Promise<string> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.on('data', (d: Buffer) => { out += d; });
  child.stderr.on('data', (d: Buffer) => { err += d; });
  return new Promise((res, rej) => child.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`client exited with ${code}:\n${err}`)))));
}

interface Result { config: string; preprocess: string; report: PiReport; serverPeakMB: number; clientPeakMB: number }
const results: Result[] = [];
for (const cfg of a.configs!.split(',')) {
  const model = cfg === 'full' ? ['--arch', 'resnet18'] : ['--preset', cfg];
  for (const prep of a.preprocess!.split(',')) {
    const spec = [...model, '--input', '32', '--classes', '100', '--seed', '0'];
    const procs: ChildProcess[] = [];
    try {
      let dealerAt: string[] = [];
      if (prep === 'dealer') {
        const d = await listening(['pi', 'dealer', ...spec, '--port', '0', '--host', '127.0.0.1'], 'pi dealer');
        procs.push(d.child);
        dealerAt = ['--dealer', `127.0.0.1:${d.port}`];
      }
      const s = await listening(['pi', 'serve', ...spec, '--port', '0', '--host', '127.0.0.1', '--preprocess', prep, ...dealerAt], 'pi serve');
      procs.push(s.child);
      const out = JSON.parse(await runChild(['--client', `127.0.0.1:${s.port}`, '--preprocess', prep, ...dealerAt])) as { report: PiReport; peakMB: number };
      results.push({ config: cfg, preprocess: prep, report: out.report, serverPeakMB: peakMB(s.child.pid!), clientPeakMB: out.peakMB });
      const p = out.report.phases;
      process.stderr.write(`${cfg} ${prep}: ${out.report.plan.relus} ReLUs, offline ${(p.offline.ms / 1e3).toFixed(2)} s, online ${(p.online.ms / 1e3).toFixed(2)} s\n`);
    } finally {
      for (const c of procs) c.kill('SIGTERM');
    }
  }
}

const full = (prep: string) => results.find((r) => r.config === 'full' && r.preprocess === prep)?.report;
const gb = (b: number) => +(b / 1e9).toFixed(3);
const rows = results.map(({ config, preprocess, report: r, serverPeakMB, clientPeakMB }) => {
  const off = r.phases.offline, on = r.phases.online, st = r.phases.setup, lin = r.linear, f = full(preprocess);
  return {
    config, prep: preprocess, relus: r.plan.relus,
    setup_s: +(st.ms / 1e3).toFixed(2), offline_s: +(off.ms / 1e3).toFixed(2), online_s: +(on.ms / 1e3).toFixed(3),
    offline_GB: gb(off.cToS + off.sToC), prep_GB: gb(st.prep + off.prep + on.prep), online_MB: +((on.cToS + on.sToC) / 1e6).toFixed(1), onlineRounds: on.rounds,
    // the linear layers' offline steps: each party's HE compute and the HE traffic (public key included)
    HE_client_s: +(lin.clientMs / 1e3).toFixed(2), HE_server_s: +(lin.serverMs / 1e3).toFixed(2), HE_MB: +((lin.cToS + lin.sToC) / 1e6).toFixed(1),
    linear_wall_s: +(lin.wallMs / 1e3).toFixed(2),
    server_peak_MB: Math.round(serverPeakMB), client_peak_MB: Math.round(clientPeakMB),
    speedupOnline: f ? +(f.phases.online.ms / on.ms).toFixed(2) : null,
  };
});
console.table(rows);
if (a.out) writeFileAtomic(a.out, `${JSON.stringify({ date: new Date().toISOString(), rows, reports: results }, null, 2)}\n`);
if (a.calibrate) writeFileAtomic(a.calibrate, `${JSON.stringify(calibrate(results.filter((r) => r.preprocess === 'he').map((r) => r.report)), null, 2)}\n`);
