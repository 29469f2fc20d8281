import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'parse5';
import { writeBands } from '../train/bands.js';
import { defaultReduceConfig, reduce, type ReduceConfig } from '../../src/reduce/pipeline.js';
import { balancedWidths } from '../../src/reduce/balance.js';
import { defaultMethodOptions, parseMethods, snlFinetuneEpochs } from '../../src/reduce/methods.js';
import { searchSubsets } from '../../src/reduce/subsets.js';
import { countRelus, loadMask, specFor } from '../../src/models/index.js';
import { loadModelDir } from '../../src/train/modeldir.js';

const data = writeBands(mkdtempSync(join(tmpdir(), 'dr-methods-bands-')));

test('ReLU balancing: equal ReLUs per kept stage (or the ratio) within the budget; infeasible budgets give null', () => {
  const base = specFor('resnet18', { alpha: 0.25, numClasses: 10, inChannels: 1 });
  const w = balancedWidths(base, [1], true, 1, 6144)!;
  // stages 2-4 at 16x16, 8x8, 4x4 with two thinned sites each: 2048 ReLUs per stage -> 4, 16, 64 channels
  assert.deepEqual(w, [16, 4, 16, 64]);
  const r = balancedWidths(base, [1], false, 0.5, 12288, [1, 1, 2, 1])!;
  // 12288 in 1:2:1 over stages 2-4 at 8x8, 4x4, 2x2 with four sites each
  assert.deepEqual(r, [16, Math.floor(3072 / 256), Math.floor(6144 / 64), Math.floor(3072 / 16)]);
  assert.equal(balancedWidths(base, [], true, 1, 1000), null, 'stage 1 at 32x32 cannot hold a channel in 250 ReLUs');
  assert.throws(() => balancedWidths(base, [], true, 1, 1000, [1, 2]), /--balance-ratio: needs 4 positive values/);
  assert.throws(() => balancedWidths(specFor('wrn-16-2'), [], true, 1, 1000), /basic-block ResNets/);
  assert.throws(
    () => parseMethods('deepreduce,nas'),
    /unknown method\(s\) nas; valid: deepreduce, balanced, subsets, snl, reshape, all/,
  );
  assert.deepEqual(parseMethods('all'), ['deepreduce', 'balanced', 'subsets', 'snl', 'reshape']);
});

test('the reduce CLI: budgets default to --budget; budget-driven methods without budgets fail before training; bad values are named', async () => {
  const { Command } = await import('commander');
  const { registerReduceCommands } = await import('../../src/cli/reduce.js');
  const { addMethodOptions, methodConfig } = await import('../../src/cli/reduce-methods.js');
  const parsed = addMethodOptions(new Command('x').exitOverride())
    .option('--budget <n>', '', Number)
    .parse(['--method', 'all', '--budget', '500', '--snl-reach-epochs', '2'], { from: 'user' })
    .opts();
  const mc = methodConfig(parsed);
  assert.deepEqual(
    [mc.methods, mc.methodOptions.budgets, mc.methodOptions.snl.reachEpochs, mc.methodOptions.snl.maxEpochs],
    [['deepreduce', 'balanced', 'subsets', 'snl', 'reshape'], [500], 2, 2],
  );
  assert.equal(snlFinetuneEpochs(mc.methodOptions, 500), 3);
  // fine-tune epochs per budget, in the order of --budgets; a count that fits neither form is named
  const per = methodConfig(
    addMethodOptions(new Command('x').exitOverride())
      .parse(['--method', 'snl', '--budgets', '100,300', '--snl-finetune-epochs', '1,4'], { from: 'user' })
      .opts(),
  );
  assert.deepEqual([snlFinetuneEpochs(per.methodOptions, 100), snlFinetuneEpochs(per.methodOptions, 300)], [1, 4]);
  assert.throws(
    () =>
      methodConfig(
        addMethodOptions(new Command('x').exitOverride())
          .parse(['--method', 'snl', '--budgets', '100,300', '--snl-finetune-epochs', '1,4,6'], { from: 'user' })
          .opts(),
      ),
    /--snl-finetune-epochs: 3 values for 2 budgets/,
  );
  const out = mkdtempSync(join(tmpdir(), 'dr-methods-cli-'));
  try {
    const program = new Command('deepreduce')
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    registerReduceCommands(program);
    await assert.rejects(
      program.parseAsync(['reduce', '--dataset', 'mnist', '--data', data, '--out', out, '--method', 'snl,balanced'], {
        from: 'user',
      }),
      /--method snl,balanced needs budgets/,
    );
    await assert.rejects(
      program.parseAsync(
        ['reduce', '--dataset', 'mnist', '--data', data, '--out', out, '--method', 'snl', '--budgets', '10,x'],
        { from: 'user' },
      ),
      /--budgets: 'x' is neither a ReLU count/,
    );
    await assert.rejects(
      program.parseAsync(['reduce', '--dataset', 'mnist', '--data', data, '--out', out, '--method', 'cryptonas'], {
        from: 'user',
      }),
      /unknown method\(s\) cryptonas/,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('subset search: every subset within the budget, ranked by criticality gain, not by the culling order', () => {
  const crit = {
    stages: [1, 2, 3, 4].map((stage, i) => ({ stage, relus: 1, acc: 0, gain: [0.1, 0.5, 0.45, 0.3][i]!, score: 0 })),
    order: [1, 4, 3, 2],
    floorAcc: 0,
    fullAcc: 1,
  };
  const cfg = (kept: number[], relus: number) => ({
    kept,
    culled: [1, 2, 3, 4].filter((s) => !kept.includes(s)),
    thinned: true,
    alpha: 1,
    rho: 1,
    relus,
    macs: 10,
    flops: 20,
  });
  const rows = searchSubsets(
    [cfg([2, 3], 90), cfg([2, 3, 4], 120), cfg([1, 2], 80), cfg([4], 10), cfg([2, 3], 60)],
    crit,
    [100],
    1,
  );
  assert.deepEqual(
    rows.map((r) => [r.kept.join(''), r.relus, r.rank, r.chosen]),
    [
      ['23', 90, 1, true],
      ['12', 80, 2, false],
      ['4', 10, 3, false],
    ],
  );
});

test('all methods in one run: DeepReDuce, balanced, subsets and learned masks in results, CSV and one report', async () => {
  const out = mkdtempSync(join(tmpdir(), 'dr-methods-'));
  try {
    const budgets = [600, 200];
    const c: ReduceConfig = defaultReduceConfig({
      arch: 'resnet20',
      baseAlpha: 0.25,
      dataset: 'mnist',
      dataDir: data,
      out,
      epochs: { baseline: 2, criticality: 1, candidate: 1 },
      alphas: [1],
      rhos: [1],
      thinning: [true],
      depth: false,
      maxCulled: 1,
      thinOnly: false,
      kdAblation: false,
      batchSize: 30,
      lr: 0.05,
      quiet: true,
      methods: ['deepreduce', 'balanced', 'subsets', 'snl'],
      methodOptions: defaultMethodOptions({
        budgets,
        snl: {
          ...defaultMethodOptions().snl,
          reachEpochs: 4,
          maxEpochs: 8,
          maskLr: 0.05,
          penalty: 1e-3,
          penaltyStep: 1.3,
          finetuneEpochs: 1,
        },
      }),
    });
    const r = await reduce(c, () => {});
    const by = (m: string) => r.candidates.filter((k) => k.method === m);
    assert.equal(by('deepreduce').length, 1);
    assert.deepEqual(
      by('balanced').map((k) => k.budget),
      budgets,
    );
    assert.deepEqual(
      by('snl').map((k) => [k.id, k.relus]),
      budgets.map((b) => [`snl-${b}`, b]),
    );
    assert.ok(by('subsets').every((k) => k.relus <= k.budget!));
    assert.ok(
      r.subsetSearch.length > 0 && budgets.every((b) => r.subsetSearch.some((row) => row.budget === b && row.chosen)),
    );
    for (const k of r.candidates) {
      assert.ok(k.macs > 0 && k.flops > 2 * k.macs, `${k.id}: MACs and FLOPs`);
      const { net, info } = loadModelDir(k.dir);
      const counted = countRelus(net.spec).total;
      net.dispose();
      assert.equal(counted, k.relus, `${k.id}: the saved model has the candidate's ReLUs`);
      if (k.method === 'balanced') {
        assert.deepEqual(info.spec.widths, k.widths);
        assert.ok(k.relus <= k.budget!);
      }
      if (k.method === 'snl') {
        assert.ok(k.maskAcc !== undefined);
        const spec = specFor('resnet20', { alpha: 0.25, numClasses: 3, inChannels: 1, inputSize: 8 });
        assert.equal(
          countRelus({ ...spec, mask: loadMask(join(k.dir, 'mask.json'), spec) }).total,
          k.budget,
          'fine-tuned with the exact mask',
        );
      }
    }
    // quoted fields hold commas
    const csv = readFileSync(join(out, 'results.csv'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.match(/("[^"]*"|[^,]*)(,|$)/g)!.map((f) => f.replace(/,$/, '')));
    const head = csv[0]!;
    assert.ok(['method', 'flops', 'macs', 'mask_acc'].every((h) => head.includes(h)));
    const col = (name: string) => csv.slice(2).map((row) => row[head.indexOf(name)]);
    assert.deepEqual(
      col('method'),
      r.candidates.map((k) => k.method),
    );
    assert.deepEqual(
      col('flops').map(Number),
      r.candidates.map((k) => k.flops),
    );
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const errors: string[] = [];
    parse(html, { onParseError: (e) => errors.push(e.code) });
    assert.deepEqual(errors, []);
    for (const label of ['DeepReDuce', 'CryptoNAS-balanced', 'learned masks (SNL)'])
      assert.ok(html.includes(`>${label}</text>`), `legend entry ${label}`);
    assert.ok(html.includes('<polygon'), 'non-circle markers');
    assert.match(html, /Stage-subset search/);
    assert.match(html, /Culling order \(least critical first\)/);
    assert.ok(
      r.candidates.every((k) => html.includes(`<td>${k.id}</td>`)),
      'every candidate in the table',
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
