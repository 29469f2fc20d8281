// `reduce --method reshape --objective latency` end to end on a tiny dataset: reshaped candidates are chosen under
// ReLU and seconds budgets, channel-sliced from the teacher, distilled, saved as loadable model directories, and the
// front, the pick and the report follow the objective.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'parse5';
import { writeBands } from '../train/bands.js';
import { defaultReduceConfig, reduce } from '../../src/reduce/pipeline.js';
import { defaultMethodOptions } from '../../src/reduce/methods.js';
import { defaultMaskLearning } from '../../src/train/snl.js';
import { countRelus } from '../../src/models/index.js';
import { readModelInfo, specOf } from '../../src/train/modeldir.js';

test('reshaped candidates under ReLU and seconds budgets: sliced from the teacher, trained, on the latency front', async () => {
  const data = writeBands(mkdtempSync(join(tmpdir(), 'dr-bands-')));
  const out = mkdtempSync(join(tmpdir(), 'dr-reshape-'));
  const lines: string[] = [];
  const r = await reduce(
    defaultReduceConfig({
      arch: 'resnet20',
      baseAlpha: 0.25,
      dataset: 'mnist',
      dataDir: data,
      out,
      epochs: { baseline: 2, criticality: 1, candidate: 1, finetune: 1 },
      alphas: [1],
      rhos: [1],
      thinning: [true],
      thinOnly: false,
      depth: false,
      maxCulled: 1,
      kdAblation: false,
      batchSize: 30,
      lr: 0.05,
      quiet: true,
      objective: 'latency',
      methods: ['deepreduce', 'reshape', 'snl'],
      methodOptions: defaultMethodOptions({
        budgets: [],
        budgetSpecs: [{ relus: 300 }, { seconds: 100 }],
        snl: { ...defaultMaskLearning, maxEpochs: 2, finetuneEpochs: 1 },
        reshape: { factors: [1, 0.5], culls: [1], thinning: [false, true], top: 1 },
      }),
    }),
    (s) => lines.push(s),
  );
  assert.deepEqual(r.failed, []);
  assert.equal(r.objective, 'latency');
  assert.deepEqual(r.front, r.fronts.latency);
  const rs = r.candidates.filter((c) => c.method === 'reshape');
  // learned masks at the teacher's widths (the ReLU budget; 100 s fits every ReLU there) and on the ReLU budget's
  // reshaped widths, from that width set's own mask phase
  const snl = r.candidates.filter((c) => c.method === 'snl');
  assert.deepEqual(
    snl.map((c) => c.id).sort(),
    ['snl-300', `snl-300-w${rs.find((c) => c.budget === 300)!.widths!.join('x')}`].sort(),
  );
  const onReshaped = snl.find((c) => c.widths)!;
  const mcfg = JSON.parse(
    readFileSync(join(out, 'snl', `mask-w${onReshaped.widths!.join('x')}`, 'config.json'), 'utf8'),
  );
  assert.equal(mcfg.initSlice, true);
  assert.deepEqual(mcfg.widths, onReshaped.widths);
  const ms = specOf(readModelInfo(onReshaped.dir), onReshaped.dir);
  assert.deepEqual(ms.widths, onReshaped.widths);
  assert.equal(countRelus(ms).total, 300, 'the fine-tuned model keeps exactly the budget');
  assert.ok(onReshaped.maskAcc !== undefined);
  assert.ok(onReshaped.latency_s < snl.find((c) => !c.widths)!.latency_s, 'narrower widths, fewer MACs, same ReLUs');
  assert.ok(rs.length >= 1 && rs.length <= 2, rs.map((c) => c.id).join());
  assert.ok(
    rs.some((c) => c.relus <= 300),
    'the ReLU budget has its reshaped candidate',
  );
  const [culled] = r.criticality.order;
  for (const c of rs) {
    assert.equal(c.init, 'sliced');
    assert.deepEqual(c.culled, [culled]);
    const cfg = JSON.parse(readFileSync(join(c.dir, 'config.json'), 'utf8'));
    assert.equal(cfg.initSlice, true);
    assert.equal(cfg.init, join(out, 'baseline'));
    assert.equal(cfg.teacher, join(out, 'baseline'));
    assert.deepEqual(cfg.widths, c.widths);
    // the saved model directory describes the same network: widths, site names and count
    const spec = specOf(readModelInfo(c.dir), c.dir);
    assert.deepEqual(spec.widths, c.widths);
    assert.equal(countRelus(spec).total, c.relus);
    assert.ok(c.latency_s > 0 && c.online_s !== null && c.online_s < c.latency_s);
    assert.ok(c.latency_s < r.baseline.latency_s);
  }
  assert.ok(r.reshapeSearch.some((x) => x.budget === '100 s' && x.rank === 1));
  // the pick is the cheapest in estimated latency within a point of the teacher, or none
  const p = r.summary.pick;
  if (p) {
    const ok = r.candidates.filter((c) => c.kd && c.acc >= r.baseline.acc - 0.01);
    assert.equal(p.latency_s, Math.min(...ok.map((c) => c.latency_s)));
  }
  const csv = readFileSync(join(out, 'results.csv'), 'utf8').split('\n');
  assert.ok(csv[0]!.endsWith(',online_s'));
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  const errors: string[] = [];
  parse(html, { onParseError: (e) => errors.push(e.code) });
  assert.deepEqual(errors, []);
  assert.match(html, /Accuracy vs estimated PI latency \(the objective\)/);
  assert.match(html, /Reshape search/);
});
