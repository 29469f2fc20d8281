// Private-inference latency and bytes for ResNet18 at 32x32 (3 channels, 100 classes, random weights): the full
// ReLU mask and the DeepReDuce presets, both parties in this process over loopback TCP (one thread: the client's
// wall time includes the server's and the dealer's compute), the trusted dealer in process (its traffic: prep_GB). Usage: node dist/bench/pi.js [--configs full,C100_230K,C100_115K,C100_12K]
// [--out FILE.json] [--calibrate FILE]
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/util/fs.js';
import { countSpec } from '../src/cli/count.js';
import { benchOnce } from '../src/cli/pi.js';
import { calibrate, serverModelRandom, type PiReport } from '../src/pi/bench.js';

const { values: a } = parseArgs({ options: { configs: { type: 'string', default: 'C100_12K,C100_115K,C100_230K,full' }, out: { type: 'string' }, calibrate: { type: 'string' } } });
const results: { config: string; report: PiReport; rssMB: number }[] = [];
for (const cfg of a.configs!.split(',')) {
  const { spec } = cfg === 'full' ? countSpec({ arch: 'resnet18', input: 32, classes: 100 }) : countSpec({ preset: cfg, input: 32, classes: 100 });
  const model = serverModelRandom(spec, 0);
  try {
    const report = await benchOnce(model, { seed: 1 });
    results.push({ config: cfg, report, rssMB: process.memoryUsage().rss / 1e6 });
    const p = report.phases;
    process.stderr.write(`${cfg}: ${report.plan.relus} ReLUs, offline ${(p.offline.ms / 1e3).toFixed(2)} s, online ${(p.online.ms / 1e3).toFixed(2)} s\n`);
  } finally {
    model.dispose();
  }
}
const full = results.find((r) => r.config === 'full')?.report;
const gb = (b: number) => (b / 1e9).toFixed(3);
const rows = results.map(({ config, report: r }) => {
  const off = r.phases.offline, on = r.phases.online, st = r.phases.setup;
  return {
    config, relus: r.plan.relus, macsM: +(r.plan.macs / 1e6).toFixed(1),
    setup_s: +(st.ms / 1e3).toFixed(2), offline_s: +(off.ms / 1e3).toFixed(2), online_s: +(on.ms / 1e3).toFixed(3),
    offline_GB: +gb(off.cToS + off.sToC), prep_GB: +gb(st.prep + off.prep + on.prep), online_MB: +((on.cToS + on.sToC) / 1e6).toFixed(1), onlineRounds: on.rounds,
    speedupOnline: full ? +(full.phases.online.ms / on.ms).toFixed(2) : null,
    speedupOffline: full ? +(full.phases.offline.ms / off.ms).toFixed(2) : null,
    bytesPerRelu: r.plan.relus ? Math.round((off.cToS + off.sToC + on.cToS + on.sToC) / r.plan.relus) : null,
  };
});
console.table(rows);
if (a.out) writeFileAtomic(a.out, `${JSON.stringify({ date: new Date().toISOString(), rows, reports: results }, null, 2)}\n`);
if (a.calibrate) writeFileAtomic(a.calibrate, `${JSON.stringify(calibrate(results.map((r) => r.report)), null, 2)}\n`);
