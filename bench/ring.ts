// The server's online linear layers: RingConv2d.apply (exact Z_2^64 convolution through libtorch float64 limbs) on
// the 3x3 conv geometries of ResNet18 at 32x32, minimum over repetitions, and which BLAS libtorch loaded (its
// float64 GEMMs run there: oneDNN has no float64 path). Compare BLAS builds with update-alternatives --set
// libblas.so.3-x86_64-linux-gnu <path> between runs (docs/pi.md, "Process settings").
// Usage: node dist/bench/ring.js [--reps 7] [--json]
import './lib/help.js';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { RingConv2d } from '../src/pi/node/ring.js';
import { randomR64, seededRandom } from '../src/pi/random.js';

const { values: a } = parseArgs({ options: { reps: { type: 'string', default: '7' }, json: { type: 'boolean' } } });
const reps = Number(a.reps);
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer, got '${a.reps}'`);
const blas = [
  ...new Set(
    readFileSync('/proc/self/maps', 'utf8')
      .split('\n')
      .filter((l) => /blas/.test(l))
      .map((l) => l.split(/\s+/).pop()!),
  ),
];
const rand = seededRandom('bench/ring');
const rows = (
  [
    [64, 32],
    [128, 16],
    [256, 8],
    [512, 4],
  ] as const
).map(([C, H]) => {
  const bound = 32767,
    w = new Float64Array(C * C * 9);
  const b = rand.bytes(2 * w.length);
  for (let i = 0; i < w.length; i++) w[i] = (((b[2 * i]! << 8) | b[2 * i + 1]!) % (2 * bound + 1)) - bound;
  const conv = new RingConv2d(
    `${C}x${H}x${H}`,
    w,
    { inShape: [C, H, H], outShape: [C, H, H], kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 1 },
    bound,
  );
  const x = randomR64(rand, C * H * H);
  conv.apply(x);
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    conv.apply(x);
    best = Math.min(best, performance.now() - t);
  }
  conv.dispose();
  return { layer: `conv ${C}->${C}, ${H}x${H}, 3x3`, ms: +best.toFixed(2) };
});
if (a.json) process.stdout.write(`${JSON.stringify({ blas, rows })}\n`);
else {
  console.log(`BLAS: ${blas.join(', ') || 'none mapped'}`);
  console.table(rows);
}
