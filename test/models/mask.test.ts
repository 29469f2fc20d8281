import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad, tensor, tidy } from '../../src/engine/index.js';
import {
  applyMask,
  buildNetwork,
  countRelus,
  cullStages,
  fullMask,
  getPreset,
  loadMask,
  maskFromDocument,
  presetSpec,
  removeSites,
  saveMask,
  specFor,
  thin,
} from '../../src/models/index.js';

const spec = specFor('resnet18');

test('culling and thinning produce the expected kept sites', () => {
  const full = fullMask(spec);
  assert.equal(full.kept.length, 17);
  const culled = cullStages(removeSites(full, ['stem.relu']), [1, 4]);
  assert.deepEqual(
    culled.kept,
    ['stage2', 'stage3'].flatMap((s) => ['block0', 'block1'].flatMap((b) => [`${s}.${b}.relu1`, `${s}.${b}.relu2`])),
  );
  assert.deepEqual(thin(culled, 'relu1').kept, [
    'stage2.block0.relu1',
    'stage2.block1.relu1',
    'stage3.block0.relu1',
    'stage3.block1.relu1',
  ]);
  assert.deepEqual(
    thin(full, 'relu2', [4]).kept.filter((s) => s.startsWith('stage4')),
    ['stage4.block0.relu2', 'stage4.block1.relu2'],
  );
  assert.equal(thin(full, 'relu2', [4]).kept.length, 15);
  assert.throws(() => cullStages(full, [5]), /no stage 5; valid stages: 1, 2, 3, 4/);
  assert.throws(() => thin(full, 'relu3'), /no site 'relu3'; valid: relu1, relu2/);
});

test('presets: stem removed, stages culled, thinned keeping relu1 (C100) or relu2 (TINY)', () => {
  const c = presetSpec('C100_49K');
  assert.deepEqual([c.alpha, c.rho, c.numClasses, c.inputSize], [0.5, 1, 100, 32]);
  assert.ok(!c.mask!.kept.includes('stem.relu'));
  assert.ok(c.mask!.kept.every((s) => /^stage[23]\.block\d\.relu1$/.test(s)));
  const t = presetSpec('TINY_57K');
  assert.deepEqual([t.alpha, t.rho, t.numClasses, t.inputSize], [0.5, 0.5, 200, 64]);
  assert.ok(t.mask!.kept.length > 0 && t.mask!.kept.every((s) => /^stage[234]\.block\d\.relu2$/.test(s)));
  assert.deepEqual(presetSpec('C100_7K').blocks, [2, 1, 1, 1]);
  assert.equal(presetSpec('TINY_918K').mask!.kept.length, 12);
  assert.throws(() => getPreset('C100_13K'), /unknown preset 'C100_13K'; valid: C100_230K, .*C100_12K.*TINY_49K/);
});

test('applyMask turns removed sites into identities', () => {
  const net = buildNetwork(specFor('resnet18', { alpha: 0.125 }));
  try {
    const mask = thin(cullStages(fullMask(net.spec), [1]), 'relu1');
    applyMask(net, mask);
    const on = net
      .sites()
      .filter((s) => s.enabled)
      .map((s) => s.site);
    assert.deepEqual(on, mask.kept);
    const off = net.sites().find((s) => s.site === 'stage1.block0.relu1')!;
    const kept = net.sites().find((s) => s.site === 'stage2.block0.relu1')!;
    noGrad(() =>
      tidy(() => {
        const x = tensor([-2, -1, 0, 1, 2]);
        assert.deepEqual(Array.from(off.forward(x).toFloat32()), [-2, -1, 0, 1, 2]);
        assert.deepEqual(Array.from(kept.forward(x).toFloat32()), [0, 0, 0, 1, 2]);
      }),
    );
    applyMask(net, fullMask(net.spec));
    assert.ok(net.sites().every((s) => s.enabled));
  } finally {
    net.dispose();
  }
});

test('a mask naming an unknown site is rejected with the valid names', () => {
  const bad = { arch: 'resnet18', kept: ['stem.relu', 'stage5.block0.relu1'] };
  assert.throws(
    () => maskFromDocument(bad, spec),
    /unknown ReLU site\(s\) stage5\.block0\.relu1 for resnet18; valid: stem\.relu, stage1\.block0\.relu1, .*stage4\.block1\.relu2/,
  );
  assert.throws(
    () => maskFromDocument({ arch: 'resnet18', removed: ['stage1.block0.relu3'] }, spec),
    /unknown ReLU site.*relu3.*valid: stem\.relu/,
  );
  const net = buildNetwork(specFor('resnet18', { alpha: 0.125, blocks: [2, 1, 1, 1] }));
  try {
    // A mask made for 2,2,2,2 names stage2.block1.*, which this network lacks.
    assert.throws(
      () => applyMask(net, fullMask(spec)),
      /applyMask: unknown ReLU site\(s\) stage2\.block1\.relu1.*valid: /,
    );
  } finally {
    net.dispose();
  }
  assert.throws(
    () => maskFromDocument({ arch: 'resnet34', kept: [] }, spec),
    /mask is for 'resnet34', network is 'resnet18'/,
  );
  assert.throws(() => maskFromDocument({ arch: 'resnet18' }, spec), /exactly one of 'kept' or 'removed'/);
  assert.throws(() => maskFromDocument({ arch: 'resnet18', kept: 'stem.relu' }, spec), /'kept' must be an array/);
});

test('masks load from kept or removed documents and round-trip through files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mask-'));
  try {
    const removed = join(dir, 'removed.json');
    writeFileSync(removed, JSON.stringify({ arch: 'resnet18', removed: ['stem.relu', 'stage1.block0.relu1'] }));
    const m = loadMask(removed, spec);
    assert.equal(m.kept.length, 15);
    assert.equal(countRelus({ ...spec, mask: m }).total, 557_056 - 2 * 65_536);
    const out = join(dir, 'kept.json');
    saveMask(out, presetSpec('C100_12K').mask!);
    const doc = JSON.parse(readFileSync(out, 'utf8'));
    assert.deepEqual(Object.keys(doc), ['arch', 'kept']);
    const back = loadMask(out, presetSpec('C100_12K'));
    assert.deepEqual(back.kept, presetSpec('C100_12K').mask!.kept);
    writeFileSync(removed, '{ not json');
    assert.throws(() => loadMask(removed, spec), new RegExp(`mask ${removed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('buildNetwork applies spec.mask', () => {
  const net = buildNetwork({ ...presetSpec('C100_12K'), alpha: 0.125 });
  try {
    assert.deepEqual(
      net
        .sites()
        .filter((s) => s.enabled)
        .map((s) => s.site),
      presetSpec('C100_12K').mask!.kept,
    );
  } finally {
    net.dispose();
  }
});
