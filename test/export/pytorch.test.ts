import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveSafetensors, tensor } from '../../src/engine/index.js';
import { cullStages, fullMask, presetSpec, removeSites, specFor, thin, type NetSpec } from '../../src/models/index.js';
import { saveModelDir } from '../../src/train/modeldir.js';
import { dims, makeNet, maxAbsDiff, ourLogits, randomInput } from './helpers.js';

const py = '/usr/bin/python3';
const probe = spawnSync(
  py,
  ['-c', "import importlib.util as u; print(int(bool(u.find_spec('torch'))), int(bool(u.find_spec('torchvision'))))"],
  { encoding: 'utf8' },
);
const [hasTorch, hasTorchvision] = (probe.stdout ?? '')
  .trim()
  .split(' ')
  .map((v) => v === '1');
const script = fileURLToPath(new URL('../../../test/export/torch_models.py', import.meta.url));
const noTorch = hasTorch
  ? false
  : `python3-torch not installed (apt-get install python3-torch): ${py} cannot import torch`;

const masked = (s: NetSpec, f: (m: ReturnType<typeof fullMask>) => ReturnType<typeof fullMask>): NetSpec => ({
  ...s,
  mask: f(fullMask(s)),
});
const r20 = specFor('resnet20', { numClasses: 10, inChannels: 1 });
const CASES: Record<string, NetSpec> = {
  'resnet20-masked': masked(r20, (m) => thin(removeSites(m, ['stem.relu', 'stage2.block1.relu2']), 'relu1', [3])),
  'c100-12k': { ...presetSpec('C100_12K'), numClasses: 10, inChannels: 1 },
  'resnet50-bottleneck': masked(specFor('resnet50', { alpha: 0.0625, numClasses: 10 }), (m) =>
    removeSites(m, ['stage1.block0.relu3']),
  ),
  'resnet18-imagenet': specFor('resnet18-imagenet', { alpha: 0.125, numClasses: 10, inputSize: 64 }),
  'wrn-10-2': masked(specFor('wrn-10-2', { alpha: 0.5, numClasses: 10 }), (m) => removeSites(m, ['head.relu'])),
  // reduce --method reshape: per-stage channels (alpha 1), stage 3 culled
  'resnet18-reshaped': masked(
    specFor('resnet18', { alpha: 1, widths: [8, 16, 4, 16], numClasses: 10, inChannels: 1, inputSize: 16 }),
    (m) => cullStages(removeSites(m, ['stem.relu']), [3]),
  ),
};
// torchvision's own resnet18 has every ReLU and full widths
const TORCHVISION: Record<string, NetSpec> = {
  'torchvision-resnet18': specFor('resnet18-imagenet', { numClasses: 10, inputSize: 64 }),
};

interface PyResult {
  torch: string;
  torchvision: boolean;
  models: Record<string, { keys: number; logits: number[]; torchvision_logits?: number[] }>;
}

/** Saves each case as a model directory (+ its input), runs the Python loader on all of them, returns ours and theirs. */
function runPython(cases: Record<string, NetSpec>, dir: string) {
  const ours: Record<string, Float32Array> = {};
  const n = 3;
  for (const [name, spec] of Object.entries(cases)) {
    const net = makeNet(spec);
    try {
      saveModelDir(join(dir, name), net, { dataset: 'synthetic', mean: [0], std: [1] });
      const x = randomInput(spec, n);
      saveSafetensors(join(dir, 'inputs', `${name}.safetensors`), { x: tensor(x, dims(spec, n)) });
      ours[name] = ourLogits(net, x, n);
    } finally {
      net.dispose();
    }
  }
  const r = spawnSync(py, [script, join(dir, 'inputs'), ...Object.keys(cases).map((c) => join(dir, c))], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  assert.equal(r.status, 0, `${script} failed:\n${r.stderr}`);
  return { ours, theirs: JSON.parse(r.stdout) as PyResult };
}

test('model.safetensors loads into PyTorch modules with torchvision names (strict) and gives our logits', {
  skip: noTorch,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'export-torch-'));
  try {
    const { ours, theirs } = runPython(CASES, dir);
    for (const name of Object.keys(CASES)) {
      const t = theirs.models[name]!;
      const d = maxAbsDiff(Float32Array.from(t.logits), ours[name]!);
      assert.ok(d < 1e-4, `${name}: max |torch - ours| = ${d} (torch ${theirs.torch})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resnet18-imagenet (alpha 1, all sites) loads into torchvision.models.resnet18', {
  skip: noTorch || (hasTorchvision ? false : 'torchvision not installed for /usr/bin/python3 (python3-torchvision)'),
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'export-tv-'));
  try {
    const { ours, theirs } = runPython(TORCHVISION, dir);
    const t = theirs.models['torchvision-resnet18']!;
    assert.ok(t.torchvision_logits, 'the torchvision comparison ran');
    assert.ok(maxAbsDiff(Float32Array.from(t.torchvision_logits!), ours['torchvision-resnet18']!) < 1e-4);
    assert.ok(maxAbsDiff(Float32Array.from(t.logits), ours['torchvision-resnet18']!) < 1e-4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
