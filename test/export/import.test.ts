import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { zipSync } from 'fflate';
import { decodeSafetensors, encodeSafetensors, loadSafetensors, tensor, tidy } from '../../src/engine/index.js';
import { importModel, type ImportOptions } from '../../src/export/import.js';
import { decodeOnnx, encodeOnnx, exportModelDirToOnnx } from '../../src/export/onnx.js';
import { loadModelDir } from '../../src/train/modeldir.js';
import { registerImportCommand } from '../../src/cli/import.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import { quantize } from '../../src/pi/fixed.js';
import { runClient, serveClient } from '../../src/pi/protocol.js';
import { channelPair } from '../../src/pi/transport/channel.js';
import { maxAbsDiff, ourLogits } from './helpers.js';

const py = '/usr/bin/python3';
const probe = spawnSync(
  py,
  ['-c', "import importlib.util as u; print(int(bool(u.find_spec('torch') and u.find_spec('torchvision'))))"],
  { encoding: 'utf8' },
);
const skip =
  probe.stdout?.trim() === '1'
    ? false
    : `${py} cannot import torch and torchvision (python3-torch, python3-torchvision)`;
const script = fileURLToPath(new URL('../../../test/export/torch_import.py', import.meta.url));
const N = 20;

let fixtures: string | null = null;
const scratch: string[] = [];
// the fixtures are ~300 MB (three full-width resnet18s in three formats each)
after(() => {
  for (const d of [fixtures, ...scratch]) if (d) rmSync(d, { recursive: true, force: true });
});
/** Runs the Python fixture script once: <name>.{safetensors,pth,onnx,io.safetensors} for imagenet, cifar, tiny. */
function dir(): string {
  if (fixtures) return fixtures;
  const d = mkdtempSync(join(tmpdir(), 'import-'));
  const r = spawnSync(py, [script, d, String(N)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${script} failed:\n${r.stderr}`);
  fixtures = d;
  return d;
}

function io(name: string) {
  return tidy(() => {
    const f = loadSafetensors(join(dir(), `${name}.io.safetensors`)).tensors;
    return { x: f.get('x')!.toArray() as Float32Array, logits: f.get('logits')!.toArray() as Float32Array };
  });
}

const MEAN = [0.485, 0.456, 0.406],
  STD = [0.229, 0.224, 0.225];

function checkImports(name: string, arch: string, family: string, classes: number) {
  const { x, logits } = io(name);
  const scale = Math.max(1, ...Array.from(logits, Math.abs));
  for (const ext of ['safetensors', 'pth', 'onnx']) {
    const out = join(dir(), `out-${name}-${ext}`);
    const r = importModel(join(dir(), `${name}.${ext}`), out, { mean: MEAN, std: STD, input: 32, dataset: 'cifar10' });
    assert.equal(r.spec.arch, arch, ext);
    assert.equal(r.spec.family, family, ext);
    assert.equal(r.spec.numClasses, classes);
    assert.equal(r.spec.alpha, 1);
    assert.deepEqual(r.spec.blocks, [2, 2, 2, 2]);
    const { net, info } = loadModelDir(out);
    try {
      assert.deepEqual(info.input.mean, MEAN);
      const ours = ourLogits(net, x, N);
      const d = maxAbsDiff(ours, logits);
      assert.ok(d <= 1e-4 * scale, `${name}.${ext}: max |ours - PyTorch| = ${d} (logits up to ${scale})`);
    } finally {
      net.dispose();
    }
  }
}

test('torchvision resnet18, ImageNet layout (32x32, 5 classes): safetensors, .pth and ONNX import with PyTorch logits', {
  skip,
}, () => {
  // torch.onnx.export's default folds BN into the convs: the importer must read Conv biases
  const onnx = decodeOnnx(readFileSync(join(dir(), 'imagenet.onnx')));
  assert.equal(onnx.graph.node.filter((n) => n.op_type === 'BatchNormalization').length, 0);
  assert.ok(onnx.graph.node.some((n) => n.op_type === 'MaxPool'));
  checkImports('imagenet', 'resnet18-imagenet', 'resnet-imagenet', 5);
});

test('torchvision resnet18, CIFAR variant (3x3 stem, no max-pool, 10 classes): all three formats, PyTorch logits', {
  skip,
}, () => {
  const onnx = decodeOnnx(readFileSync(join(dir(), 'cifar.onnx')));
  assert.ok(onnx.graph.node.filter((n) => n.op_type === 'BatchNormalization').length > 0, 'BN kept in this export');
  checkImports('cifar', 'resnet18', 'resnet-cifar', 10);
});

test('a narrow ResNet50-style net of torchvision Bottlenecks (v1.5): state dict and BN-folded ONNX, PyTorch logits', {
  skip,
}, () => {
  const { x, logits } = io('tinyb');
  for (const ext of ['pth', 'onnx']) {
    const out = join(dir(), `out-tinyb-${ext}`);
    const r = importModel(join(dir(), `tinyb.${ext}`), out, { input: 16 });
    assert.equal(r.spec.arch, 'resnet50');
    assert.equal(r.spec.blockType, 'bottleneck');
    assert.deepEqual(r.spec.blocks, [1, 1, 1, 1]);
    assert.equal(r.spec.alpha, 0.0625);
    const { net } = loadModelDir(out);
    try {
      const d = maxAbsDiff(ourLogits(net, x, N), logits);
      assert.ok(d <= 1e-4 * Math.max(1, ...Array.from(logits, Math.abs)), `tinyb.${ext}: max |ours - PyTorch| = ${d}`);
    } finally {
      net.dispose();
    }
  }
});

test("deepreduce export's own ONNX imports back: the same weights, spec and preprocessing (deepreduce.input)", {
  skip,
}, () => {
  const a = join(dir(), 'rt-a'),
    b = join(dir(), 'rt-b');
  importModel(join(dir(), 'tiny.pth'), a, { input: 8, mean: [0.5, 0.4, 0.3], std: [0.2], dataset: 'cifar10' });
  exportModelDirToOnnx(a, join(dir(), 'rt.onnx'));
  const r = importModel(join(dir(), 'rt.onnx'), b);
  assert.deepEqual(r.input.mean, [0.5, 0.4, 0.3]);
  assert.deepEqual(r.input.std, [0.2, 0.2, 0.2]);
  assert.equal(r.input.dataset, 'cifar10');
  assert.deepEqual(readFileSync(join(b, 'model.safetensors')), readFileSync(join(a, 'model.safetensors')));
  const spec = (d: string) => JSON.parse(readFileSync(join(d, 'model.json'), 'utf8')).spec;
  assert.deepEqual(spec(b), spec(a));
});

/** Importing must fail with an error matching `re`, and leave nothing behind. */
function refuses(file: string, re: RegExp, o: ImportOptions = {}) {
  const parent = mkdtempSync(join(tmpdir(), 'import-bad-'));
  scratch.push(parent);
  const out = join(parent, 'model');
  assert.throws(() => importModel(file, out, o), re);
  assert.deepEqual(readdirSync(parent), [], 'nothing written');
}

test('bad files: truncated, wrong op, wrong shape, wrong name, a pickle with a foreign global; nothing written', {
  skip,
}, () => {
  const d = dir();
  const bad = join(d, 'bad');
  mkdirSync(bad, { recursive: true });
  const cut = (name: string, ext: string) => {
    const b = readFileSync(join(d, `${name}.${ext}`));
    const f = join(bad, `cut-${name}.${ext}`);
    writeFileSync(f, b.subarray(0, Math.floor(b.length / 2)));
    return f;
  };
  refuses(cut('tiny', 'pth'), /cut-tiny\.pth: .*(truncated|corrupt)/);
  refuses(cut('tiny', 'safetensors'), /safetensors .*cut-tiny\.safetensors: .*(exceeds|outside)/);
  refuses(cut('tiny', 'onnx'), /cut-tiny\.onnx/);

  // an op the importer does not read
  const m = decodeOnnx(readFileSync(join(d, 'tiny.onnx')));
  const relu = m.graph.node.find((n) => n.op_type === 'Relu')!;
  relu.op_type = 'Sigmoid';
  const sig = join(bad, 'sigmoid.onnx');
  writeFileSync(sig, encodeOnnx(m));
  refuses(sig, /op 'Sigmoid' is not supported; supported ops: Conv, BatchNormalization, Relu/);

  // a wrong shape and a wrong name in a state dict
  const edit = (f: string, change: (t: Map<string, ReturnType<typeof tensor>>) => void) =>
    tidy(() => {
      const s = decodeSafetensors(readFileSync(join(d, 'tiny.safetensors')));
      change(s.tensors);
      const p = join(bad, f);
      writeFileSync(p, encodeSafetensors(s.tensors));
      return p;
    });
  const shape = edit('shape.safetensors', (t) =>
    t.set('layer2.1.conv2.weight', tensor(new Float32Array(8 * 4 * 9), [8, 4, 3, 3])),
  );
  refuses(shape, /'layer2\.1\.conv2\.weight' has shape \[8,4,3,3\], expected \[8,8,3,3\]/);
  const name = edit('name.safetensors', (t) => {
    t.set('classifier.weight', t.get('fc.weight')!);
    t.delete('fc.weight');
  });
  refuses(name, /no tensor 'fc\.weight'.*torchvision-named ResNets/);
  const extra = edit('extra.safetensors', (t) => t.set('layer1.0.se.weight', tensor(new Float32Array(4), [4])));
  refuses(extra, /unexpected \[layer1\.0\.se\.weight\]/);

  // torch.save zip whose pickle calls os.system('ls'): refused by name, before anything runs
  const pickle = Buffer.concat([
    Buffer.from([0x80, 0x02]),
    Buffer.from('cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02R.', 'latin1'),
  ]);
  const evil = join(bad, 'evil.pth');
  writeFileSync(evil, zipSync({ 'archive/data.pkl': pickle, 'archive/version': Buffer.from('3\n') }, { level: 0 }));
  refuses(
    evil,
    /global 'os\.system'.*only these are allowed: collections\.OrderedDict, torch\._utils\._rebuild_tensor_v2/,
  );

  // other opcodes than a state dict needs (INST, which would call os.system) are refused by their byte
  const inst = join(bad, 'inst.pth');
  const instPickle = Buffer.from('\x80\x02(ios\nsystem\nX\x02\x00\x00\x00ls.', 'latin1');
  writeFileSync(inst, zipSync({ 'archive/data.pkl': instPickle }, { level: 0 }));
  refuses(inst, /pickle opcode 0x69 at byte 3 is not allowed/);
  // a whole pickled module (torch.save(model)) names its class
  refuses(join(d, 'tiny.module.pth'), /global '__main__\.Tiny'.*save model\.state_dict\(\)/);

  // flags that contradict the file
  refuses(join(d, 'tiny.pth'), /--classes 100, but fc\.weight has 3 rows/, { classes: 100 });
  refuses(join(d, 'tiny.onnx'), /--input 64, but the graph's input is 8x8/, { input: 64 });
  refuses(join(d, 'tiny.pth'), /--mean has 2 values for 3 input channels/, { mean: [0.5, 0.5] });

  // an existing, non-empty output directory is never touched
  const taken = join(bad, 'taken');
  mkdirSync(taken, { recursive: true });
  writeFileSync(join(taken, 'keep'), 'x');
  assert.throws(() => importModel(join(d, 'tiny.pth'), taken), /exists and is not empty/);
  assert.deepEqual(readdirSync(taken), ['keep']);
  assert.ok(!existsSync(join(bad, 'model')));

  // a checkpoint dict with the state dict under 'state_dict' imports as the bare state dict does
  const ck = importModel(join(d, 'tiny.ckpt.pth'), join(bad, 'ckpt'), { input: 8 });
  assert.equal(ck.spec.alpha, 0.0625);
});

test('deepreduce import (CLI) prints the inferred architecture and its notes', { skip }, async () => {
  const lines: string[] = [];
  const program = new Command().exitOverride();
  registerImportCommand(program, { out: (s) => void lines.push(s) });
  const out = join(dir(), 'cli-out');
  await program.parseAsync(['import', join(dir(), 'imagenet.pth'), '--out', out, '--classes', '5', '--input', '32'], {
    from: 'user',
  });
  const text = lines.join('');
  assert.match(
    text,
    /wrote .*cli-out: resnet18-imagenet \(resnet-imagenet, basic blocks \[2,2,2,2\], widths 64,128,256,512\), 5 classes, 3x32x32 input, 11,179,077 parameters, from pytorch/,
  );
  assert.match(text, /note: 7x7 conv1: ImageNet layout/);
  assert.match(text, /note: no --mean\/--std/);
  assert.ok(existsSync(join(out, 'model.json')) && existsSync(join(out, 'model.safetensors')));
});

test('an imported narrow torchvision-block ResNet18 (.pth) gives PyTorch logits and runs under PI (he + ot)', {
  skip,
}, async () => {
  const out = join(dir(), 'out-tiny');
  const r = importModel(join(dir(), 'tiny.pth'), out, { input: 8 });
  assert.equal(r.spec.arch, 'resnet18');
  assert.equal(r.spec.alpha, 0.0625, 'widths 4..32 are resnet18 at alpha 1/16');
  const { x, logits } = io('tiny');
  const { net } = loadModelDir(out);
  const m = compilePlan(net);
  try {
    const d = maxAbsDiff(ourLogits(net, x, N), logits);
    assert.ok(d <= 1e-4 * Math.max(1, ...Array.from(logits, Math.abs)), `max |ours - PyTorch| = ${d}`);
    const top1 = (v: ArrayLike<number>) => Array.from(v).indexOf(Math.max(...Array.from(v)));
    const size = 3 * 8 * 8;
    for (let i = 0; i < 3; i++) {
      const xi = x.slice(i * size, (i + 1) * size);
      const ref = referenceForward(m, quantize(xi, m.plan.fixed.f));
      const [sc, cc] = channelPair();
      const opts = { preprocess: 'he', relu: 'ot' };
      const [, client] = await Promise.all([serveClient(sc, m, opts), runClient(cc, xi, opts)]);
      assert.equal(top1(client.logits), top1(ref.logits), `image ${i}: secure top-1 vs the fixed-point reference`);
      assert.equal(top1(ref.logits), top1(logits.subarray(i * 3, i * 3 + 3)), `image ${i}: fixed point vs PyTorch`);
    }
  } finally {
    m.dispose();
    net.dispose();
  }
});

test('a trained zoo model (zoo:teacher) exported by us imports back bit-exactly: weights, spec, logits', async () => {
  const { resolveModelDir } = await import('../../src/zoo/zoo.js');
  const a = resolveModelDir('zoo:teacher'),
    b = join(dir(), 'zoo-rt');
  exportModelDirToOnnx(a, join(dir(), 'zoo-rt.onnx'));
  importModel(join(dir(), 'zoo-rt.onnx'), b);
  // The same tensors, bit for bit (the files' headers differ: the zoo's copy records its storage).
  const tensors = (d: string) => decodeSafetensors(readFileSync(join(d, 'model.safetensors'))).tensors;
  const ta = tensors(a),
    tb = tensors(b);
  assert.deepEqual([...tb.keys()].sort(), [...ta.keys()].sort());
  for (const [k, t] of ta) {
    assert.deepEqual(tb.get(k)!.shape, t.shape, k);
    assert.deepEqual(tb.get(k)!.toArray(), t.toArray(), k);
  }
  const spec = (d: string) => JSON.parse(readFileSync(join(d, 'model.json'), 'utf8')).spec;
  assert.deepEqual(spec(b), spec(a));
  const x = Float32Array.from({ length: 2 * 32 * 32 }, (_, i) => Math.sin(i));
  const logits = (d: string) => ourLogits(loadModelDir(d).net, x, 2);
  assert.equal(maxAbsDiff(logits(b), logits(a)), 0);
});
