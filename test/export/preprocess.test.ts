// The documented input recipe (docs/export.md, "Preparing inputs") reproduces the trainer's inputs: PyTorch, given
// only the model directory and the raw IDX test images, prepares them as the docs say and classifies them as
// `deepreduce eval` does. Fashion-MNIST is padded 28 -> 32, so the padding value and its order matter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noGrad, setNumThreads, tensor, tidy } from '../../src/engine/index.js';
import { DEBIAN_FASHION_MNIST, loadDataset, makeBatch } from '../../src/data/index.js';
import { decodeOnnx, exportModelDirToOnnx } from '../../src/export/onnx.js';
import { loadModelDir } from '../../src/train/modeldir.js';
import { trainModel } from '../../src/train/run.js';
import { defaultTrainOptions } from '../../src/train/trainer.js';

setNumThreads(1); // test files run in parallel on shared cores

const py = '/usr/bin/python3';
const hasTorch = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const skip = !hasTorch
  ? `python3-torch not installed: ${py} cannot import torch`
  : !existsSync(DEBIAN_FASHION_MNIST)
    ? `${DEBIAN_FASHION_MNIST} not installed (apt-get install dataset-fashion-mnist)`
    : false;
const script = fileURLToPath(new URL('../../../test/export/torch_preprocess.py', import.meta.url));
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const N = 400;

/** Top-1 of our own inference on the first n test images, prepared by the trainer's own batch code. */
function ourTop1(dir: string, n: number): number[] {
  const { net, info } = loadModelDir(dir);
  try {
    const te = loadDataset('fashion-mnist', 'test');
    const idx = Array.from({ length: n }, (_, i) => i);
    const { x } = makeBatch(te, idx, { padTo: net.spec.inputSize, mean: info.input.mean, std: info.input.std }, 0);
    const logits = tidy(() =>
      noGrad(() => net.forward(tensor(x, [n, 1, net.spec.inputSize, net.spec.inputSize])).toArray() as Float32Array),
    );
    const k = net.spec.numClasses;
    return idx.map((i) => {
      let b = 0;
      for (let c = 1; c < k; c++) if (logits[i * k + c]! > logits[i * k + b]!) b = c;
      return b;
    });
  } finally {
    net.dispose();
  }
}

test('PyTorch following the documented input recipe matches deepreduce eval on padded Fashion-MNIST', {
  skip,
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'export-prep-'));
  try {
    const model = join(dir, 'model');
    await trainModel({
      arch: 'resnet20',
      alpha: 0.5,
      dataset: 'fashion-mnist',
      batchSize: 32,
      limitTrain: 768,
      limitTest: N,
      out: model,
      options: { ...defaultTrainOptions, epochs: 1, lr: 0.05, threads: 1, quiet: true },
    });
    const info = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8')) as {
      input: { padFrom?: number; preprocess?: string };
    };
    assert.equal(info.input.padFrom, 28, 'Fashion-MNIST is padded 28 -> 32');
    assert.match(
      info.input.preprocess ?? '',
      /pixel \/ 255.*pad .*black pixels, x = 0; then normalise every pixel, padding included/,
    );
    const onnx = decodeOnnx(exportModelDirToOnnx(model, join(dir, 'model.onnx')).bytes);
    const meta = JSON.parse(onnx.metadata_props!.find((p) => p.key === 'deepreduce.input')!.value) as {
      preprocess: string;
    };
    assert.equal(meta.preprocess, info.input.preprocess, 'the ONNX metadata states the same recipe');

    const ev = spawnSync(process.execPath, [cli, 'eval', '--model', model, '--limit-test', String(N), '--json'], {
      encoding: 'utf8',
      env: { ...process.env, DEEPREDUCE_THREADS: '1' },
    });
    assert.equal(ev.status, 0, ev.stderr);
    const evalAcc = (JSON.parse(ev.stdout) as { acc: number; n: number }).acc;

    const r = spawnSync(
      py,
      [
        script,
        model,
        join(DEBIAN_FASHION_MNIST, 't10k-images-idx3-ubyte.gz'),
        join(DEBIAN_FASHION_MNIST, 't10k-labels-idx1-ubyte.gz'),
        String(N),
      ],
      {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      },
    );
    assert.equal(r.status, 0, `${script} failed:\n${r.stderr}`);
    const torch = JSON.parse(r.stdout) as { labels: number[]; documented: number[]; zero_pad_after: number[] };
    const ours = ourTop1(model, N);
    // A model that always answers one class would agree under any recipe; the last check below also rules it out.
    assert.ok(new Set(ours).size >= 3, `our predictions use ${new Set(ours).size} classes`);
    const agree = (p: number[]) => p.filter((v, i) => v === ours[i]).length / N;
    const acc = (p: number[]) => p.filter((v, i) => v === torch.labels[i]).length / N;

    t.diagnostic(
      `deepreduce eval ${(100 * evalAcc).toFixed(2)}%; PyTorch, documented recipe ${(100 * acc(torch.documented)).toFixed(2)}% (top-1 = ours on ${(100 * agree(torch.documented)).toFixed(1)}%), ` +
        `old recipe ${(100 * acc(torch.zero_pad_after)).toFixed(2)}% (top-1 = ours on ${(100 * agree(torch.zero_pad_after)).toFixed(1)}%)`,
    );
    assert.ok(
      agree(torch.documented) >= 0.99,
      `documented recipe: PyTorch top-1 equals ours on ${(100 * agree(torch.documented)).toFixed(1)}% of ${N} images`,
    );
    assert.ok(
      Math.abs(acc(torch.documented) - evalAcc) <= 2 / N,
      `documented recipe: PyTorch ${(100 * acc(torch.documented)).toFixed(2)}% vs deepreduce eval ${(100 * evalAcc).toFixed(2)}%`,
    );
    // The check has power: the recipe the docs used to give (normalise, then zero-pad) fails it on this model.
    assert.ok(
      agree(torch.zero_pad_after) < 0.99,
      `old recipe agrees on ${(100 * agree(torch.zero_pad_after)).toFixed(1)}%: this model cannot tell the recipes apart`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
