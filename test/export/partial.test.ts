// Partial ReLU sites (learned fine-grained masks) through export: ONNX (Relu + Where by a constant mask) checked by
// onnxruntime, and model.safetensors + mask loaded into PyTorch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { saveSafetensors, tensor } from '../../src/engine/index.js';
import {
  countRelus,
  cullStages,
  fullMask,
  removeSites,
  setSiteElements,
  siteShapes,
  specFor,
  type NetSpec,
  type ReluMask,
} from '../../src/models/index.js';
import { decodeOnnx, encodeOnnx, exportOnnx, ONNX_FLOAT } from '../../src/export/onnx.js';
import { saveModelDir } from '../../src/train/modeldir.js';
import { dims, makeNet, maxAbsDiff, ortLogits, ourLogits, randomInput, session } from './helpers.js';

/** resnet20 (10 classes, 1 channel) with stage 3 culled, stem removed, two partial sites: whole channels and a scatter. */
function spec(): NetSpec {
  const s = specFor('resnet20', { alpha: 0.5, numClasses: 10, inChannels: 1 });
  const shapes = siteShapes(s);
  let m: ReluMask = cullStages(removeSites(fullMask(s), ['stem.relu']), [3]);
  const [c, h, w] = shapes.get('stage1.block1.relu2')! as [number, number, number];
  m = setSiteElements(
    m,
    'stage1.block1.relu2',
    [c, h, w],
    Uint32Array.from([0, 3, 6].flatMap((ch) => Array.from({ length: h * w }, (_, i) => ch * h * w + i))),
  );
  const sh = shapes.get('stage2.block0.relu1')!;
  const n = sh.reduce((a, b) => a * b, 1);
  m = setSiteElements(
    m,
    'stage2.block0.relu1',
    sh,
    Uint32Array.from({ length: n }, (_, i) => i).filter((i) => (i * 2654435761) % 7 < 2),
  );
  return { ...s, mask: m };
}

test('ONNX with partial sites: onnxruntime matches ours (BN kept and folded), ReLUs only on the masks, counts exact', async () => {
  const sp = spec();
  const net = makeNet(sp);
  try {
    const count = countRelus(sp);
    for (const foldBn of [false, true]) {
      const e = exportOnnx(net, { foldBn });
      const s = await session(e.bytes);
      for (const n of [1, 4]) {
        const x = randomInput(sp, n);
        const d = maxAbsDiff((await ortLogits(s, sp, x, n)).data, ourLogits(net, x, n));
        assert.ok(d < 1e-4, `BN ${foldBn ? 'folded' : 'kept'}, batch ${n}: max |onnx - ours| = ${d}`);
      }
      assert.equal(e.summary.reluElements, count.total, 'summary = deepreduce count');
      for (const r of e.summary.relus) assert.equal(r.relus, count.sites.find((c) => c.site === r.name)!.relus, r.name);
      assert.deepEqual(
        e.summary.relus.filter((r) => r.partial).map((r) => r.name),
        ['stage1.block1.relu2', 'stage2.block0.relu1'],
      );
    }
    // onnxruntime's own values: a partial site changes its input only where the mask keeps a ReLU (and the input is negative).
    const model = decodeOnnx(exportOnnx(net).bytes);
    const selects = model.graph.node.filter((v) => v.op_type === 'Where');
    assert.deepEqual(
      selects.map((v) => v.name),
      ['stage1.block1.relu2.select', 'stage2.block0.relu1.select'],
    );
    for (const v of selects)
      model.graph.output.push(
        ...[v.input[2]!, v.output[0]!].map((name) => ({ name, type: { tensor_type: { elem_type: ONNX_FLOAT } } })),
      );
    const n = 3;
    const r = await (await session(encodeOnnx(model))).run({
      input: new ort.Tensor('float32', randomInput(sp, n), dims(sp, n)),
    });
    for (const v of selects) {
      const site = v.output[0]!;
      const kept = new Set(sp.mask!.partial![site]!.elements);
      const inp = r[v.input[2]!]!.data as Float32Array,
        out = r[site]!.data as Float32Array;
      const per = inp.length / n;
      let changed = 0;
      for (let i = 0; i < inp.length; i++) {
        const k = kept.has(i % per);
        assert.equal(
          out[i],
          k ? Math.max(0, inp[i]!) : inp[i],
          `${site} element ${i % per} of image ${Math.floor(i / per)}`,
        );
        if (out[i] !== inp[i]) changed++;
      }
      assert.ok(changed > 0, `${site}: some kept element had a negative input`);
      const maskInit = model.graph.initializer.find((t) => t.name === `${site}.mask`)!;
      assert.deepEqual(maskInit.dims.map(Number), [1, ...siteShapes(sp).get(site)!]);
    }
  } finally {
    net.dispose();
  }
});

const py = '/usr/bin/python3';
const probe = spawnSync(py, ['-c', "import importlib.util as u; print(int(bool(u.find_spec('torch'))))"], {
  encoding: 'utf8',
});
const noTorch = (probe.stdout ?? '').trim() === '1' ? false : `python3-torch not installed: ${py} cannot import torch`;
const script = fileURLToPath(new URL('../../../test/export/torch_models.py', import.meta.url));

test('model.safetensors + a mask with partial sites load into PyTorch and give our logits and our predictions', {
  skip: noTorch,
}, () => {
  const sp = spec();
  const dir = mkdtempSync(join(tmpdir(), 'export-partial-torch-'));
  const net = makeNet(sp);
  try {
    saveModelDir(join(dir, 'partial'), net, { dataset: 'synthetic', mean: [0], std: [1] });
    saveModelDir(join(dir, 'labelled'), net, { dataset: 'synthetic', mean: [0], std: [1] });
    const n = 3,
      m = 40;
    const x = randomInput(sp, n);
    saveSafetensors(join(dir, 'inputs', 'partial.safetensors'), { x: tensor(x, dims(sp, n)) });
    // labelled: labels = our predictions, so our accuracy is 1 and PyTorch must match it
    const xl = randomInput(sp, m);
    const ours = ourLogits(net, xl, m);
    const pred = Int32Array.from({ length: m }, (_, i) => {
      const row = ours.subarray(i * 10, i * 10 + 10);
      return row.indexOf(Math.max(...row));
    });
    saveSafetensors(join(dir, 'inputs', 'labelled.safetensors'), { x: tensor(xl, dims(sp, m)), y: tensor(pred, [m]) });
    const r = spawnSync(py, [script, join(dir, 'inputs'), join(dir, 'partial'), join(dir, 'labelled')], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    assert.equal(r.status, 0, `${script} failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout) as {
      models: Record<string, { logits?: number[]; acc?: number; images?: number }>;
    };
    const d = maxAbsDiff(Float32Array.from(out.models.partial!.logits!), ourLogits(net, x, n));
    assert.ok(d < 1e-4, `max |torch - ours| = ${d}`);
    assert.deepEqual([out.models.labelled!.acc, out.models.labelled!.images], [1, m]);
  } finally {
    net.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
