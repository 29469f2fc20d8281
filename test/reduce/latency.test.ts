// The reduction's objective: fronts and picks per axis, budgets in ReLUs or seconds, estimates per candidate, and the
// reshape search under a time budget. No training.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countRelus, specFor, type NetSpec } from '../../src/models/index.js';
import { defaultCostModel } from '../../src/pi/node/costmodel.js';
import { parseLink } from '../../src/pi/transport/shaping.js';
import {
  estimateSpec,
  frontOn,
  objectiveCost,
  parseBudget,
  parseBudgets,
  pickOn,
  reluBudgetFor,
  withinBudget,
} from '../../src/reduce/latency.js';
import { reshapeConfigs, reshapeId, searchReshape, teacherChannels } from '../../src/reduce/reshape.js';
import { candidateMask } from '../../src/reduce/pipeline.js';
import { pickRecommended } from '../../src/reduce/measurepi.js';
import type { ReduceResults } from '../../src/reduce/pipeline.js';

const ctx = { relu: 'ot', link: parseLink('lan') };
const fmnist = specFor('resnet18', { alpha: 0.25, numClasses: 10, inChannels: 1, inputSize: 32 });

// A synthetic candidate set where ReLUs and latency disagree: 'wide' has few ReLUs but many MACs and layers,
// 'narrow' more ReLUs but far less linear work; 'online' is cheapest online only.
const cands = [
  { id: 'wide', acc: 0.91, relus: 6_000, latency_s: 1.6, online_s: 0.1 },
  { id: 'narrow', acc: 0.91, relus: 20_000, latency_s: 0.5, online_s: 0.12 },
  { id: 'online', acc: 0.91, relus: 30_000, latency_s: 0.9, online_s: 0.05 },
  { id: 'bad', acc: 0.8, relus: 3_000, latency_s: 0.3, online_s: 0.2 },
  { id: 'best', acc: 0.925, relus: 60_000, latency_s: 2.0, online_s: 0.3 },
];

test('the objective picks the front and the recommended model on its axis', () => {
  assert.deepEqual(frontOn(cands, 'relus'), ['bad', 'wide', 'best']);
  assert.deepEqual(frontOn(cands, 'latency'), ['bad', 'narrow', 'best']);
  assert.deepEqual(frontOn(cands, 'online'), ['online', 'best']);
  // within 1 point of a 92.0% teacher
  assert.equal(pickOn(cands, 'relus', 0.91)!.id, 'wide');
  assert.equal(pickOn(cands, 'latency', 0.91)!.id, 'narrow');
  assert.equal(pickOn(cands, 'online', 0.91)!.id, 'online');
  assert.equal(pickOn(cands, 'latency', 0.95), null);
  // no online estimate: never on the online front, never picked online
  const noOnline = [...cands.slice(0, 4), { id: 'x', acc: 0.99, relus: 1, latency_s: 0.01, online_s: null }];
  assert.ok(!frontOn(noOnline, 'online').includes('x'));
  assert.equal(objectiveCost(noOnline[4]!, 'online'), Number.POSITIVE_INFINITY);
  // pickRecommended (measure-pi and the demo) follows the run's objective
  const run = (objective: 'relus' | 'latency' | 'online') =>
    ({
      objective,
      config: { kd: true },
      baseline: { acc: 0.92 },
      candidates: cands.map((c) => ({ ...c, kd: true })),
    }) as unknown as ReduceResults;
  assert.equal(pickRecommended(run('relus'), 0.01).recommended, 'wide');
  assert.equal(pickRecommended(run('latency'), 0.01).recommended, 'narrow');
  assert.equal(pickRecommended(run('online'), 0.01).recommended, 'online');
});

test('budgets parse as ReLUs or seconds, and seconds budgets filter on the objective time axis', () => {
  assert.deepEqual(parseBudgets('6144,0.5s,300ms, 12288'), [
    { relus: 6144 },
    { seconds: 0.5 },
    { seconds: 0.3 },
    { relus: 12288 },
  ]);
  for (const bad of ['0', '1.5', '-3', '0s', '5m', 's', '1e3', '0.5 s x'])
    assert.throws(() => parseBudget(bad), /neither a ReLU count|must be > 0/, bad);
  const narrow = cands[1]!;
  assert.ok(withinBudget(narrow, { seconds: 0.5 }, 'latency'));
  assert.ok(!withinBudget(narrow, { seconds: 0.49 }, 'latency'));
  assert.ok(withinBudget(narrow, { seconds: 0.2 }, 'online'), 'online objective: online seconds');
  assert.ok(withinBudget(narrow, { relus: 20_000 }, 'online'));
  assert.ok(!withinBudget(narrow, { relus: 19_999 }, 'latency'));
  // a seconds budget becomes the largest ReLU count (teacher's shape, every site an op) whose estimate fits
  const base = { ...fmnist, mask: undefined };
  for (const o of ['latency', 'online'] as const) {
    const axis = o === 'online' ? 'online_s' : 'latency_s';
    const full = estimateSpec(base, defaultCostModel, ctx)[axis]!;
    const b = (estimateSpec(base, defaultCostModel, ctx, 1)[axis]! + full) / 2;
    const r = reluBudgetFor(b, base, defaultCostModel, ctx, o);
    assert.ok(r > 1 && r < countRelus(base).total, `${o}: ${r}`);
    assert.ok(estimateSpec(base, defaultCostModel, ctx, r)[axis]! <= b + 1e-12);
    assert.ok(estimateSpec(base, defaultCostModel, ctx, r + 1)[axis]! > b);
    assert.equal(reluBudgetFor(1e-6, base, defaultCostModel, ctx, o), 0);
  }
});

test('estimates: fewer ReLUs, fewer MACs or fused layers cost less; online below total', () => {
  const full = estimateSpec(fmnist, defaultCostModel, ctx);
  assert.ok(full.online_s! > 0 && full.online_s! < full.latency_s);
  const culled = { ...fmnist, mask: candidateMask(fmnist, [1], false) };
  const c = estimateSpec(culled, defaultCostModel, ctx);
  assert.ok(c.latency_s < full.latency_s && c.online_s! < full.online_s!);
  const narrow = specFor('resnet18', { ...fmnist, alpha: 1, widths: [16, 32, 64, 32] });
  const n = estimateSpec({ ...narrow, mask: candidateMask(narrow, [4], false) }, defaultCostModel, ctx);
  const w = estimateSpec({ ...fmnist, mask: candidateMask(fmnist, [4], false) }, defaultCostModel, ctx);
  assert.ok(n.latency_s < w.latency_s, 'a culled stage narrowed costs less at the same ReLUs');
  assert.equal(
    countRelus({ ...narrow, mask: candidateMask(narrow, [4], false) }).total,
    countRelus({ ...fmnist, mask: candidateMask(fmnist, [4], false) }).total,
  );
  // an unknown protocol has no online estimate
  assert.equal(
    estimateSpec(fmnist, { ...defaultCostModel, relu: { x: defaultCostModel.relu.ot! } }, { relu: 'x', link: null })
      .online_s,
    null,
  );
});

test('the reshape search: within each budget, culled stages narrowed first; the chosen one ranks first', () => {
  const crit = {
    stages: [1, 2, 3, 4].map((s) => ({ stage: s, relus: 0, acc: 0, gain: [0.1, 0.2, 0.5, 0.6][s - 1]!, score: 0 })),
    order: [1, 2, 3, 4],
    floorAcc: 0,
    fullAcc: 1,
  };
  const o = { factors: [1, 0.5, 0.25], culls: [1], thinning: [true], top: 1 };
  const mk = (spec: NetSpec, culled: number[], thinned: boolean) => ({
    ...spec,
    mask: candidateMask(spec, culled, thinned),
  });
  const cost = (spec: NetSpec) => {
    const k = countRelus(spec);
    return { relus: k.total, macs: k.macs, flops: k.flops, ...estimateSpec(spec, defaultCostModel, ctx) };
  };
  const configs = reshapeConfigs(fmnist, crit, o, mk, cost);
  assert.equal(configs.length, 3 ** 4 - 1, 'the grid, the teacher widths left out');
  const t = teacherChannels(fmnist);
  const lat = configs.map((x) => x.cost.latency_s).sort((a, b) => a - b);
  const budget = { seconds: lat[Math.floor(lat.length / 2)]! };
  const { rows, chosen } = searchReshape(configs, [budget, { relus: 9000 }], o, 'latency');
  assert.equal(chosen.length, 2);
  const [first] = chosen;
  assert.ok(first!.cost.latency_s <= budget.seconds);
  // nothing within the budget scores higher
  for (const x of configs.filter((y) => y.cost.latency_s <= budget.seconds)) assert.ok(x.score <= first!.score + 1e-12);
  // ties on the score go to more ReLUs, then more MACs
  for (const x of configs.filter((y) => y.cost.latency_s <= budget.seconds && Math.abs(y.score - first!.score) < 1e-12))
    assert.ok(x.relus < first!.relus || (x.relus === first!.relus && x.macs <= first!.macs));
  // stage 1 is culled: under a budget that the teacher's widths with stage 1 at x0.25 just meet, that configuration
  // (every stage that keeps ReLUs at full width) is chosen over narrowing any of them
  const s1 = configs.find((x) => x.channels.join() === [Math.round(t[0]! * 0.25), ...t.slice(1)].join())!;
  const tight = searchReshape(configs, [{ seconds: s1.cost.latency_s }], o, 'latency').chosen[0]!;
  assert.deepEqual(tight.channels.slice(1), t.slice(1));
  assert.ok(tight.channels[0]! < t[0]!);
  assert.ok(chosen[1]!.relus <= 9000);
  assert.equal(rows.filter((r) => r.rank === 1).length, 2);
  assert.match(reshapeId(first!), /^rs-cull1-thin-w\d+x\d+x\d+x\d+$/);
});
