// Private-inference latency and bytes for ResNet18 at 32x32 (3 channels, 100 classes, random weights): the full
// ReLU mask and the DeepReDuce presets, per ReLU protocol and link profile, both parties in this process over
// loopback TCP (one thread: the client's wall time includes the server's and the dealer's compute; the link
// shaping delays each party's sends), the trusted dealer in process (its traffic: prep_MB, not shaped).
// Usage: node dist/bench/pi.js [--configs full,C100_230K,C100_115K,C100_12K] [--relu gc,ot] [--link none,lan,wan]
// [--out FILE.json] [--calibrate FILE]
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/util/fs.js';
import { countSpec } from '../src/cli/count.js';
import { benchOnce } from '../src/cli/pi.js';
import { calibrate, serverModelRandom, type PiReport } from '../src/pi/bench.js';
import { makeReluProtocol } from '../src/pi/relu/registry.js';
import { parseLinks } from '../src/pi/transport/shaping.js';

const { values: a } = parseArgs({
  options: {
    configs: { type: 'string', default: 'C100_12K,C100_115K,C100_230K,full' }, relu: { type: 'string', default: 'gc,ot' },
    link: { type: 'string', default: 'none,lan,wan' }, out: { type: 'string' }, calibrate: { type: 'string' },
  },
});
const relus = a.relu!.split(',').map((r) => makeReluProtocol(r).name), links = parseLinks(a.link!);
const results: { config: string; relu: string; link: string; report: PiReport; rssMB: number }[] = [];
for (const cfg of a.configs!.split(',')) {
  const { spec } = cfg === 'full' ? countSpec({ arch: 'resnet18', input: 32, classes: 100 }) : countSpec({ preset: cfg, input: 32, classes: 100 });
  const model = serverModelRandom(spec, 0);
  try {
    for (const link of links) {
      for (const relu of relus) {
        const report = await benchOnce(model, { seed: 1, relu, link });
        results.push({ config: cfg, relu, link: link?.name ?? 'none', report, rssMB: Math.round(process.memoryUsage().rss / 1e6) });
        const p = report.phases;
        process.stderr.write(`${cfg} ${relu} ${link?.name ?? 'none'}: ${report.plan.relus} ReLUs, offline ${(p.offline.ms / 1e3).toFixed(2)} s, online ${(p.online.ms / 1e3).toFixed(2)} s\n`);
      }
    }
  } finally {
    model.dispose();
  }
}
const mb = (b: number) => +(b / 1e6).toFixed(1);
const rows = results.map(({ config, relu, link, report: r, rssMB }) => {
  const { setup: st, offline: off, online: on } = r.phases;
  const bytes = (x: { cToS: number; sToC: number }) => x.cToS + x.sToC;
  const all = bytes(st) + bytes(off) + bytes(on);
  return {
    config, relu, link, relus: r.plan.relus,
    total_s: +((st.ms + off.ms + on.ms) / 1e3).toFixed(2), setup_s: +(st.ms / 1e3).toFixed(2), offline_s: +(off.ms / 1e3).toFixed(2), online_s: +(on.ms / 1e3).toFixed(3),
    total_MB: mb(all), online_MB: mb(bytes(on)), prep_MB: mb(st.prep + off.prep + on.prep),
    flights: st.rounds + off.rounds + on.rounds, onlineFlights: on.rounds,
    bytesPerRelu: r.plan.relus ? Math.round((bytes(off) + bytes(on)) / r.plan.relus) : null, rssMB,
  };
});
console.table(rows);
if (a.out) writeFileAtomic(a.out, `${JSON.stringify({ date: new Date().toISOString(), rows, reports: results }, null, 2)}\n`);
if (a.calibrate) writeFileAtomic(a.calibrate, `${JSON.stringify(calibrate(results.map((r) => r.report)), null, 2)}\n`);
