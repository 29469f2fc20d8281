// The largest |w| of every secret layer after BN folding (and pooling divisors), per model directory, and what a
// fixed weight scale of --weight-frac fractional bits in 16-bit weights clips: the measurement behind the default
// weight scale of the PI plan (docs/pi.md, "Fixed point").
// Usage: node dist/bench/pi-weights.js DIR... [--weight-frac 12] [--json]
import './lib/help.js';
import { parseArgs } from 'node:util';
import { serverModelFromDir } from '../src/pi/node/load.js';

const { values: a, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'weight-frac': { type: 'string', default: '12' }, json: { type: 'boolean' } },
});
if (!positionals.length) throw new Error('give one or more model directories');
const weightFrac = Number(a['weight-frac']);
const rows = positionals.map((dir) => {
  const m = serverModelFromDir(dir, { weightFrac });
  try {
    const q = m.quant;
    const top = [...q.layers]
      .sort((x, y) => y.maxAbs - x.maxAbs)
      .slice(0, 3)
      .map((l) => `${l.name} ${l.maxAbs.toFixed(3)}`);
    return {
      dir,
      arch: m.plan.arch,
      layers: q.layers.length,
      maxAbs: +q.maxAbs.toFixed(4),
      log2MaxAbs: +Math.log2(q.maxAbs).toFixed(2),
      limit: q.limit,
      clipped: q.clipped,
      weights: q.layers.reduce((s, l) => s + l.weights, 0),
      largest: top.join(', '),
    };
  } finally {
    m.dispose();
  }
});
if (a.json) console.log(JSON.stringify({ weightFrac, rows }, null, 2));
else console.table(rows);
