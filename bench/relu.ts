// Cost of one kept ReLU site under each ReLU protocol, both parties in this process over an in-process channel pair
// (one thread: times are both parties' work together): bytes per ReLU by phase and direction, flights, and
// microseconds per ReLU offline and online, as wall time and as this process's CPU time (user + system; on a shared
// machine the CPU time is the steadier figure). The site is the plan's usual one (width 45, shift 12: a 32-bit
// comparison for ot and silent). setup_kB: the session set-up's bytes, both ways (base OTs; silent: its IKNP bootstrap
// and bootstrap round), paid once per session, not per ReLU. silent's offline bytes include its LPN rounds as they
// fall due (a round serves ~531K COTs, ~11K ReLUs): use --reps >= 3 and a large --n for the amortized figure.
// Usage: node dist/bench/relu.js [--relu gc,ot,silent] [--n 65536] [--width 45 --shift 12] [--batch 16384]
// [--reps 3] [--json]
import './lib/help.js';
import { parseArgs } from 'node:util';
import { reluCost } from './lib/relu-cost.js';

const { values: a } = parseArgs({
  options: {
    relu: { type: 'string', default: 'gc,ot,silent' },
    n: { type: 'string', default: '65536' },
    width: { type: 'string', default: '45' },
    shift: { type: 'string', default: '12' },
    batch: { type: 'string', default: '16384' },
    reps: { type: 'string', default: '3' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (a.help) {
  console.log(`Usage: node dist/bench/relu.js [options]
Bytes per ReLU by phase and direction, flights, and us per ReLU (wall and CPU) of one site per rep.
  --relu LIST    ReLU protocols, comma-separated (default gc,ot,silent)
  --n N          ReLUs per site (default 65536)
  --width W      ring width of the site (default 45)
  --shift S      truncation shift (default 12)
  --batch B      ReLUs per OT batch (default 16384)
  --reps R       sites per protocol, the median is reported (default 3)
  --json         print JSON instead of a table`);
  process.exit(0);
}
const n = Number(a.n),
  width = Number(a.width),
  shift = Number(a.shift),
  batch = Number(a.batch),
  reps = Number(a.reps);
for (const [k, v] of Object.entries({ n, width, shift, batch, reps }))
  if (!Number.isInteger(v) || v < (k === 'shift' ? 0 : 1))
    throw new Error(`--${k} must be a positive integer, got ${v}`);

const rows = [];
for (const name of a.relu!.split(',')) rows.push(await reluCost(name, { n, width, shift, batch, reps }));
if (a.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
else console.table(rows);
