import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { Identity } from '../../src/engine/index.js';
import {
  Network,
  buildNetwork,
  describeNetwork,
  fullMask,
  removeSites,
  specFor,
  type Flow,
  type GraphNode,
  type NetSpec,
} from '../../src/models/index.js';
import { saveModelDir } from '../../src/train/modeldir.js';
import { registerExportCommand } from '../../src/cli/export.js';
import { decodeOnnx, exportOnnx, graphToOnnx } from '../../src/export/onnx.js';
import { makeNet, maxAbsDiff, ortLogits, ourLogits, randomInput, session } from './helpers.js';

async function run(...args: string[]): Promise<string> {
  let out = '';
  const program = new Command('deepreduce').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerExportCommand(program, { out: (s) => void (out += s) });
  await program.parseAsync(['export', ...args], { from: 'user' });
  return out;
}

const spec0 = specFor('resnet20', { numClasses: 10, inChannels: 1, alpha: 0.25 });
const spec: NetSpec = { ...spec0, mask: removeSites(fullMask(spec0), ['stem.relu', 'stage3.block2.relu2']) };
const input = { dataset: 'fashion-mnist', padFrom: 28, mean: [0.286], std: [0.353] };

function withModelDir(fn: (dir: string, tmp: string) => Promise<void> | void) {
  return async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'export-cli-'));
    const net = makeNet(spec);
    try {
      saveModelDir(join(tmp, 'model'), net, input);
      await fn(join(tmp, 'model'), tmp);
    } finally {
      net.dispose();
      rmSync(tmp, { recursive: true, force: true });
    }
  };
}

test(
  'deepreduce export writes an ONNX file that onnxruntime runs like the model directory',
  withModelDir(async (dir, tmp) => {
    const out = join(tmp, 'm.onnx');
    const text = await run('--model', dir, '--format', 'onnx', '--out', out, '--fold-bn');
    assert.match(
      text,
      /^wrote .*m\.onnx: resnet20, ONNX opset 17, \d+ nodes, 17 Relu \([\d,]+ ReLUs\/image\), 21 BN folded, 0 kept, /,
    );
    const bytes = readFileSync(out);
    const model = decodeOnnx(bytes, out);
    const meta = Object.fromEntries((model.metadata_props ?? []).map((p) => [p.key, p.value]));
    const { preprocess, ...transform } = JSON.parse(meta['deepreduce.input']!) as typeof input & { preprocess: string };
    assert.deepEqual(transform, input);
    assert.match(
      preprocess,
      /28x28 -> 32x32 .* black pixels, x = 0; then normalise .*\(0 - mean\) \/ std = -0\.8102, not 0/,
      'pad with black, then normalise',
    );
    assert.equal(JSON.parse(meta['deepreduce.spec']!).arch, 'resnet20');
    const net = makeNet(spec);
    try {
      const x = randomInput(spec, 2);
      const d = maxAbsDiff((await ortLogits(await session(bytes), spec, x, 2)).data, ourLogits(net, x, 2));
      assert.ok(d < 1e-4, `max |onnx - ours| = ${d}`);
    } finally {
      net.dispose();
    }
    assert.match(
      await run('--model', dir, '--out', out),
      /21 BatchNormalization/,
      '--format defaults to onnx, BN kept by default',
    );
    await assert.rejects(
      run('--model', dir, '--format', 'tflite', '--out', out),
      /'tflite' is invalid\. Allowed choices are onnx/,
    );
    await assert.rejects(run('--out', out), /required option '--model <dir>' not specified/);
  }),
);

test(
  'corrupt model directories: each error names the file or field, and no output is written',
  withModelDir(async (dir, tmp) => {
    const out = join(tmp, 'bad.onnx');
    const expectFail = async (re: RegExp) => {
      await assert.rejects(run('--model', dir, '--out', out), re);
      assert.ok(!existsSync(out), 'no output after a failed export');
    };
    const json = join(dir, 'model.json'),
      weights = join(dir, 'model.safetensors');
    const goodJson = readFileSync(json, 'utf8'),
      goodWeights = readFileSync(weights);
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

    await assert.rejects(
      run('--model', join(tmp, 'nope'), '--out', out),
      new RegExp(`${esc(join(tmp, 'nope'))}: not a deepreduce model directory \\(model.json missing\\)`),
    );
    writeFileSync(json, '{"format": "deepreduce-model", ');
    await expectFail(new RegExp(`${esc(json)}: not valid JSON`));
    writeFileSync(json, JSON.stringify({ ...JSON.parse(goodJson), format: 'keras' }));
    await expectFail(new RegExp(`${esc(json)}: field 'format' must be 'deepreduce-model'`));
    const info = JSON.parse(goodJson);
    writeFileSync(json, JSON.stringify({ ...info, spec: { ...info.spec, family: 'vit' } }));
    await expectFail(
      new RegExp(
        `${esc(json)}: field 'spec.family' is "vit", which the exporter does not support \\(supported: resnet-cifar, resnet-imagenet, resnet-thin, wrn\\)`,
      ),
    );
    writeFileSync(
      json,
      JSON.stringify({ ...info, spec: { ...info.spec, mask: { arch: 'resnet20', kept: ['stage9.block0.relu1'] } } }),
    );
    await expectFail(/model\.json: spec\.mask: unknown ReLU site\(s\) stage9\.block0\.relu1/);
    writeFileSync(json, goodJson);

    rmSync(weights);
    await expectFail(new RegExp(`safetensors ${esc(weights)}: cannot read`));
    writeFileSync(weights, goodWeights.subarray(0, 1000));
    await expectFail(new RegExp(`safetensors ${esc(weights)}: header length \\d+ exceeds the file \\(1000 bytes\\)`));
    writeFileSync(weights, goodWeights.subarray(0, goodWeights.length - 64));
    await expectFail(new RegExp(`safetensors ${esc(weights)}: tensor '.*' data_offsets`));
    // weights of a different width: every tensor is there, shapes disagree
    const wide = buildNetwork({ ...spec, alpha: 0.5 });
    try {
      saveModelDir(join(tmp, 'wide'), wide, input);
    } finally {
      wide.dispose();
    }
    writeFileSync(weights, readFileSync(join(tmp, 'wide', 'model.safetensors')));
    await expectFail(
      new RegExp(`state dict \\(${esc(weights)}\\): 'conv1.weight' has shape \\[8,1,3,3\\], expected \\[4,1,3,3\\]`),
    );
    writeFileSync(weights, goodWeights);
    assert.match(await run('--model', dir, '--out', out), /^wrote /, 'restored directory exports again');
    assert.throws(
      () => decodeOnnx(new Uint8Array([0xff, 0xff, 0xff]), 'junk.onnx'),
      /onnx junk\.onnx: not a valid ModelProto/,
    );
  }),
);

test('unsupported layers: a graph op or a module the exporter does not handle is named in the error', () => {
  const net = buildNetwork(spec);
  try {
    const nodes = describeNetwork(net);
    const i = nodes.findIndex((n) => n.name === 'layer2.0.bn1');
    const odd = nodes.map((n, j) => (j === i ? ({ ...n, op: 'softmax' } as unknown as GraphNode) : n));
    assert.throws(
      () => graphToOnnx(odd, { name: 'resnet20' }),
      new RegExp(
        `onnx export of 'resnet20': node #${i} 'layer2.0.bn1' \\(softmax\\): op 'softmax' is not handled by the ONNX exporter \\(supported: input, conv, bn, relu, add, maxpool, avgpool, gap, flatten, linear\\)`,
      ),
    );
    const wrongModule = nodes.map((n) => (n.name === 'fc' ? { ...n, module: new Identity() } : n));
    assert.throws(
      () => graphToOnnx(wrongModule, { name: 'resnet20' }),
      /node #\d+ 'fc' \(linear\): expected a Linear module, got Identity/,
    );
  } finally {
    net.dispose();
  }

  // a network with a layer that has no graph description
  class WithHead extends Network {
    readonly inner = this.child('inner', buildNetwork(spec0));
    readonly norm = this.child('norm', new Identity());
    run<V>(f: Flow<V>, x: V): V {
      return f(this.norm, f(this.inner, x));
    }
  }
  const custom = new WithHead({ ...spec0, arch: 'resnet20-head' });
  try {
    assert.throws(
      () => exportOnnx(custom),
      /onnx export of 'resnet20-head': graph: module 'norm' \(Identity\) has no graph description/,
    );
  } finally {
    custom.dispose();
  }
});
