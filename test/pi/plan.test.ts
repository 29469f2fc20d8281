// The public plan: one weight scale for every layer (the plan does not depend on the weights' magnitudes), clipping
// counted, a ReLU width beyond 64 bits refused by name, and checkPlan refusing every malformed or oversized plan.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed, noGrad } from '../../src/engine/index.js';
import { compilePlan } from '../../src/pi/node/compile.js';
import { checkPlan, DEFAULT_PLAN_BOUNDS, type PublicPlan, type ServerModel } from '../../src/pi/plan.js';
import type { PiError } from '../../src/pi/transport/errors.js';

const spec = specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] });
const models: ServerModel[] = [];
after(() => {
  for (const m of models) m.dispose();
});

function compile(edit?: (sd: Map<string, { mul_(k: number): unknown }>) => void, o = {}): ServerModel {
  manualSeed(3);
  const net = buildNetwork(spec).eval();
  if (edit) noGrad(() => edit(net.stateDict()));
  const m = compilePlan(net, o);
  net.dispose();
  models.push(m);
  return m;
}

test("one weight scale: no per-layer field, every conv/fc adds weightFrac; the plan does not change with a layer's weights", () => {
  const base = compile();
  const p = base.plan;
  for (const o of p.ops) {
    assert.ok(!('wFrac' in o), `${o.name} has a per-layer weight scale`);
    if (o.op === 'conv' || o.op === 'fc') assert.equal(o.scale, p.ops[o.input]!.scale + p.fixed.weightFrac, o.name);
  }
  assert.equal(base.quant.clipped, 0);
  // Weights 64x smaller in one layer, 16x larger in another (beyond the 16-bit range at 12 fractional bits: clipped).
  const edited = compile((sd) => {
    sd.get('layer1.0.conv1.weight')!.mul_(1 / 64);
    sd.get('layer2.0.conv2.weight')!.mul_(16);
  });
  assert.deepEqual(edited.plan, base.plan);
  assert.ok(edited.quant.clipped > 0, 'clipped weights are counted');
  const layer = edited.quant.layers.find((l) => l.clipped);
  assert.ok(layer && /layer2\.0\.conv2/.test(layer.name), JSON.stringify(layer));
  assert.match(edited.warnings.join('\n'), /\d+ weights clipped to \+-7\.99\d+ .*layer2\.0\.conv2(\.\w+)? \d+\/\d+/);
});

test('a ReLU that would need more than 64 bits is refused, naming the site', () => {
  assert.throws(
    () => compile(undefined, { reluIntBits: 40 }),
    /plan: ReLU site stem\.relu: the circuit would need 65 bits/,
  );
});

/** The plan with `edit` applied and its digest recomputed (so that the schema check, not the digest, must catch it). */
function corrupt(p: PublicPlan, edit: (q: Record<string, any>) => void): unknown {
  const q = JSON.parse(JSON.stringify(p)) as Record<string, any>;
  edit(q);
  const { digest: _d, ...body } = q;
  q.digest = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16);
  return q;
}

test('checkPlan: a valid plan passes; every malformed or oversized one is refused with the op and field named', () => {
  const p = compile().plan;
  assert.deepEqual(checkPlan(JSON.parse(JSON.stringify(p)), 'peer'), p);
  const conv = p.ops.findIndex((o) => o.op === 'conv' && o.input > 0),
    relu = p.ops.findIndex((o) => o.op === 'relu');
  const add = p.ops.findIndex((o) => o.op === 'add'),
    fc = p.ops.findIndex((o) => o.op === 'fc');
  const cases: [string, (q: Record<string, any>) => void, RegExp][] = [
    [
      'forward reference',
      (q) => {
        q.ops[conv].input = conv + 1;
      },
      new RegExp(`op ${conv} \\(conv\\)\\.input = ${conv + 1} is not an integer in \\[0, ${conv - 1}\\]`),
    ],
    [
      'size not the shape',
      (q) => {
        q.ops[relu].size += 1;
      },
      new RegExp(`op ${relu} \\(relu\\): size \\d+ is not the product`),
    ],
    [
      'negative dimension',
      (q) => {
        q.ops[relu].shape[0] = -4;
      },
      /shape\[0\] = -4 is not an integer/,
    ],
    [
      'ReLU width above 64',
      (q) => {
        q.ops[relu].width = 65;
      },
      /\.width = 65 is not an integer in \[2, 64\]/,
    ],
    [
      'ReLU width not the rule',
      (q) => {
        q.ops[relu].width -= 1;
      },
      /width \d+ is not scale \d+ \+ 20 integer bits/,
    ],
    [
      'a per-layer weight scale',
      (q) => {
        q.ops[conv].scale += 1;
      },
      /scale \d+ is not its input's \d+ \+ weightFrac 12/,
    ],
    [
      'conv geometry',
      (q) => {
        q.ops[conv].geom.kernel = 5;
      },
      /kernel 5, stride \d, padding \d, dilation 1 on .* give/,
    ],
    [
      'add shifts',
      (q) => {
        q.ops[add].shifts = [1, 0];
      },
      /shifts \[1,0\] do not align/,
    ],
    [
      'fc inSize',
      (q) => {
        q.ops[fc].inSize += 1;
      },
      /inSize \d+ is not its input's size/,
    ],
    [
      'unknown op field',
      (q) => {
        q.ops[conv].wFrac = 9;
      },
      /op \d+ \(conv\) has an unexpected field 'wFrac'/,
    ],
    [
      'unknown op',
      (q) => {
        q.ops[relu].op = 'softmax';
      },
      /unknown op "softmax"/,
    ],
    [
      'unknown plan field',
      (q) => {
        q.extra = [1, 2, 3];
      },
      /the plan has an unexpected field 'extra'/,
    ],
    [
      'totals',
      (q) => {
        q.relus += 1;
      },
      /totals \(relus \d+/,
    ],
    [
      'class names',
      (q) => {
        q.input.classNames = ['a'];
      },
      /input\.classNames is not an array of 10\.\.10 entries/,
    ],
    [
      'fixed point',
      (q) => {
        q.fixed.weightFrac = 15;
      },
      /fixed\.weightFrac = 15 is not an integer in \[0, 14\]/,
    ],
    [
      'huge op',
      (q) => {
        q.ops[0].shape = [3, 65536, 65536];
        q.ops[0].size = 3 * 65536 * 65536;
      },
      /op 0 \(input\)\.size = \d+ is not an integer in \[1, 16777216\]/,
    ],
  ];
  for (const [what, edit, re] of cases) {
    assert.throws(
      () => checkPlan(corrupt(p, edit), 'peer'),
      (e: PiError) => e.code === 'MALFORMED' && re.test(e.message),
      what,
    );
  }
  assert.throws(() => checkPlan({ ...p, digest: '0'.repeat(16) }, 'peer'), /digest 0{16} does not match/);
  // Bounds are the client's: a plan beyond them is refused before anything is allocated for it.
  const total = p.ops.reduce((a, o) => a + o.size, 0);
  assert.throws(
    () => checkPlan(p, 'peer', { ...DEFAULT_PLAN_BOUNDS, maxTotalElements: total - 1 }),
    /more than \d+ elements over all ops/,
  );
  assert.throws(() => checkPlan(p, 'peer', { ...DEFAULT_PLAN_BOUNDS, maxRelus: p.relus - 1 }), /kept ReLUs/);
  assert.throws(
    () => checkPlan(p, 'peer', { ...DEFAULT_PLAN_BOUNDS, maxOps: p.ops.length - 1 }),
    /ops is not an array of 1\.\.\d+ entries/,
  );
});
