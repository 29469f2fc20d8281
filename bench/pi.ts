// Private-inference latency and bytes for ResNet18 at 32x32 (3 channels, 100 classes, random weights): the full
// ReLU mask and the DeepReDuce presets, both parties in this process over loopback TLS 1.3 (one thread: the client's
// wall time includes the server's and the dealer's compute), the trusted dealer in process (its traffic: prep_GB).
// `--links tls,insecure` runs each config over TLS and over plain TCP back to back (`--repeat` times, medians), for
// the cost of TLS. Usage: node dist/bench/pi.js [--configs full,C100_230K,C100_115K,C100_12K] [--links tls]
// [--repeat 1] [--out FILE.json] [--calibrate FILE]
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/util/fs.js';
import { countSpec } from '../src/cli/count.js';
import { benchOnce } from '../src/cli/pi.js';
import { calibrate, serverModelRandom, type PiReport } from '../src/pi/bench.js';

const { values: a } = parseArgs({
  options: {
    configs: { type: 'string', default: 'C100_12K,C100_115K,C100_230K,full' }, links: { type: 'string', default: 'tls' },
    repeat: { type: 'string', default: '1' }, out: { type: 'string' }, calibrate: { type: 'string' },
  },
});
const links = a.links!.split(',');
for (const l of links) if (l !== 'tls' && l !== 'insecure') throw new Error(`--links: '${l}' is neither tls nor insecure`);
const repeat = Number(a.repeat);
if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat must be a positive integer, got '${a.repeat}'`);
const median = (v: number[]) => { const s = [...v].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

type Run = { setup: number; offline: number; online: number; cpu: number };
const results: { config: string; link: string; report: PiReport; runs: Run[]; rssMB: number }[] = [];
for (const cfg of a.configs!.split(',')) {
  const { spec } = cfg === 'full' ? countSpec({ arch: 'resnet18', input: 32, classes: 100 }) : countSpec({ preset: cfg, input: 32, classes: 100 });
  const model = serverModelRandom(spec, 0);
  try {
    const by = new Map(links.map((l) => [l, { report: null as PiReport | null, runs: [] as Run[] }]));
    // Links alternate within each repetition so that drift of the machine hits both alike.
    for (let k = 0; k < repeat; k++) {
      for (const link of links) {
        const c0 = process.cpuUsage();
        const report = await benchOnce(model, { seed: 1, insecure: link === 'insecure' });
        const u = process.cpuUsage(c0), cpu = (u.user + u.system) / 1e3;
        const p = report.phases, e = by.get(link)!;
        e.report = report;
        e.runs.push({ setup: p.setup.ms, offline: p.offline.ms, online: p.online.ms, cpu });
        process.stderr.write(`${cfg} ${link} #${k + 1}: ${report.plan.relus} ReLUs, setup ${(p.setup.ms / 1e3).toFixed(2)} s, offline ${(p.offline.ms / 1e3).toFixed(2)} s, online ${(p.online.ms / 1e3).toFixed(2)} s, CPU ${(cpu / 1e3).toFixed(2)} s\n`);
      }
    }
    for (const [link, e] of by) results.push({ config: cfg, link, report: e.report!, runs: e.runs, rssMB: process.memoryUsage().rss / 1e6 });
  } finally {
    model.dispose();
  }
}
const gb = (b: number) => (b / 1e9).toFixed(3);
const rows = results.map(({ config, link, report: r, runs }) => {
  const off = r.phases.offline, on = r.phases.online, st = r.phases.setup;
  const full = results.find((x) => x.config === 'full' && x.link === link);
  const med = (k: keyof Run) => median(runs.map((x) => x[k])) / 1e3;
  return {
    config, link, relus: r.plan.relus, macsM: +(r.plan.macs / 1e6).toFixed(1),
    setup_s: +med('setup').toFixed(2), offline_s: +med('offline').toFixed(2), online_s: +med('online').toFixed(3), cpu_s: +med('cpu').toFixed(2),
    offline_GB: +gb(off.cToS + off.sToC), prep_GB: +gb(st.prep + off.prep + on.prep), online_MB: +((on.cToS + on.sToC) / 1e6).toFixed(1), onlineRounds: on.rounds,
    speedupOnline: full ? +(median(full.runs.map((x) => x.online)) / 1e3 / med('online')).toFixed(2) : null,
    bytesPerRelu: r.plan.relus ? Math.round((off.cToS + off.sToC + on.cToS + on.sToC) / r.plan.relus) : null,
  };
});
console.table(rows);
if (links.length === 2) {
  const overhead = [...new Set(rows.map((r) => r.config))].map((config) => {
    const t = rows.find((r) => r.config === config && r.link === 'tls')!, p = rows.find((r) => r.config === config && r.link === 'insecure')!;
    const pct = (x: number, y: number) => +((100 * (x - y)) / y).toFixed(1);
    return { config, offline_pct: pct(t.offline_s, p.offline_s), online_pct: pct(t.online_s, p.online_s), setup_pct: pct(t.setup_s, p.setup_s), cpu_pct: pct(t.cpu_s, p.cpu_s) };
  });
  process.stdout.write('TLS overhead (median TLS wall / CPU time vs plain TCP, %):\n');
  console.table(overhead);
}
if (a.out) writeFileAtomic(a.out, `${JSON.stringify({ date: new Date().toISOString(), rows, reports: results }, null, 2)}\n`);
if (a.calibrate) writeFileAtomic(a.calibrate, `${JSON.stringify(calibrate(results.filter((r) => r.link === links[0]).map((r) => r.report)), null, 2)}\n`);
