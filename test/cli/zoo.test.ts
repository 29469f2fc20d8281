// The model zoo: fp16 storage (bit patterns, safetensors round trip), `zoo add` (fp16 kept only where test accuracy
// holds), and `zoo:NAME` resolved for the CLI's model options, all on a temporary zoo ($DEEPREDUCE_ZOO).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeSafetensors, encodeSafetensors, tensor } from '../../src/engine/index.js';
import { buildNetwork, fullMask, removeSites, specFor, type NetSpec } from '../../src/models/index.js';
import { countRelus } from '../../src/models/count.js';
import { loadDataset } from '../../src/data/index.js';
import { saveModelDir } from '../../src/train/modeldir.js';
import { fromHalf, safetensorsToFp16, safetensorsToFp32, toHalf } from '../../src/zoo/fp16.js';
import { readZooIndex, resolveModelDir } from '../../src/zoo/zoo.js';
import { zooAdd } from '../../src/cli/zoo.js';
import { headlinePicks, headlineTable } from '../../src/cli/demo.js';
import type { PiMeasurement } from '../../src/reduce/measurepi.js';

const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('toHalf rounds to nearest even, saturates to infinity, keeps subnormals; fromHalf inverts it', () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65520, 0x7c00], // halfway to the next binade rounds up: infinity
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // halfway between 0 and the smallest subnormal: ties to even (0)
    [1 + 2 ** -11, 0x3c00], // tie -> even mantissa
    [1 + 3 * 2 ** -11, 0x3c02], // tie -> even mantissa (up)
    [0.1, 0x2e66],
    [Number.POSITIVE_INFINITY, 0x7c00],
  ];
  for (const [v, h] of cases) assert.equal(toHalf(v), h, `toHalf(${v})`);
  assert.ok(Number.isNaN(fromHalf(toHalf(Number.NaN))));
  for (let h = 0; h < 0x7c00; h += 7) assert.equal(toHalf(fromHalf(h)), h, `half ${h} round trip`);
});

test('safetensors: F32 tensors to F16 and back, within half precision; other dtypes untouched', () => {
  const n = 1000;
  const v = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 3);
  const bytes = encodeSafetensors(
    { w: tensor(v, [10, 100]), count: tensor(BigInt64Array.from([7n, -3n]), [2], 'int64') },
    { format: 'pt' },
  );
  const half = safetensorsToFp16(bytes, 'x');
  assert.ok(half.length < bytes.length - 1900, `fp16 file ${half.length} B, fp32 ${bytes.length} B`);
  const back = decodeSafetensors(safetensorsToFp32(half, 'x'), 'x');
  assert.equal(back.metadata.format, 'pt');
  const w = back.tensors.get('w')!;
  assert.deepEqual(w.shape, [10, 100]);
  assert.equal(w.dtype, 'float32');
  const got = w.toArray() as Float32Array;
  for (let i = 0; i < n; i++) assert.ok(Math.abs(got[i]! - v[i]!) <= Math.abs(v[i]!) * 2 ** -11 + 2 ** -25, `w[${i}]`);
  assert.deepEqual(Array.from(back.tensors.get('count')!.toArray() as BigInt64Array), [7n, -3n]);
  assert.equal(safetensorsToFp32(bytes, 'x'), bytes, 'a file without F16 comes back as it is');
});

const spec0 = specFor('resnet20', { numClasses: 10, inChannels: 1, alpha: 0.25 });
const spec: NetSpec = { ...spec0, mask: removeSites(fullMask(spec0), ['stem.relu']) };
const input = { dataset: 'fashion-mnist', padFrom: 28, mean: [0.286], std: [0.353] };
const LIMIT = 200;

/** A model directory whose logits are fc.bias alone (fc.weight = 0), so that each prediction is known. */
function modelDir(dir: string, bias: number[]): void {
  const net = buildNetwork(spec);
  try {
    saveModelDir(dir, net, input);
  } finally {
    net.dispose();
  }
  const f = join(dir, 'model.safetensors');
  const st = decodeSafetensors(readFileSync(f), f);
  const w = st.tensors.get('fc.weight')!;
  st.tensors.set('fc.weight', tensor(new Float32Array(w.shape[0]! * w.shape[1]!), w.shape));
  st.tensors.set('fc.bias', tensor(Float32Array.from(bias), [10]));
  writeFileSync(f, encodeSafetensors(st.tensors, st.metadata));
}

test('zoo add --fp16, then zoo:NAME in eval (another process), pi serve and the loader; unknown names list the zoo', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'zoo-test-'));
  const env = { ...process.env, DEEPREDUCE_ZOO: join(tmp, 'zoo'), DEEPREDUCE_CACHE: join(tmp, 'cache') };
  try {
    const labels = Array.from(loadDataset('fashion-mnist', 'test').labels.subarray(0, LIMIT));
    const count = (c: number) => labels.filter((y) => y === c).length;
    // Logits differ by 0.25: fp16 keeps the order, so every prediction is class 3.
    const bias = [0, 0, 0, 1.25, 1, 0, 0, 0, 0, 0];
    modelDir(join(tmp, 'm'), bias);
    const e = await zooAdd(
      join(tmp, 'm'),
      { name: 'm1', fp16: true, tolerance: 0.1, limitTest: LIMIT },
      env.DEEPREDUCE_ZOO,
    );
    assert.equal(e.storage, 'fp16');
    assert.equal(e.role, 'front', 'a masked network is a front model by default');
    assert.equal(e.accuracy.test, count(3) / LIMIT);
    assert.equal(e.accuracy.fp32, e.accuracy.test);
    assert.equal(e.relus, countRelus(spec).total);
    const st = readFileSync(join(env.DEEPREDUCE_ZOO, 'm1', 'model.safetensors'));
    assert.ok(st.length < 0.6 * readFileSync(join(tmp, 'm', 'model.safetensors')).length, 'fp16 halves the weights');
    assert.equal(
      e.bytes,
      Object.values(e.files).reduce((a, b) => a + b, 0),
    );
    assert.deepEqual(
      readZooIndex(env.DEEPREDUCE_ZOO).models.map((m) => m.name),
      ['m1'],
    );

    // eval in its own process: the CLI's hook resolves zoo:m1 to an fp32 directory under the cache.
    const ev = spawnSync(
      process.execPath,
      [main, 'eval', '--model', 'zoo:m1', '--limit-test', String(LIMIT), '--json'],
      {
        env,
        encoding: 'utf8',
      },
    );
    assert.equal(ev.status, 0, ev.stderr);
    const r = JSON.parse(ev.stdout) as { acc: number; model: string };
    assert.equal(r.acc, e.accuracy.test);
    assert.ok(r.model.startsWith(join(tmp, 'cache', 'zoo', 'm1-')), r.model);
    const cached = decodeSafetensors(readFileSync(join(r.model, 'model.safetensors')));
    assert.equal(cached.tensors.get('fc.bias')!.dtype, 'float32');
    assert.deepEqual(Array.from(cached.tensors.get('fc.bias')!.toArray() as Float32Array), bias);

    // The library path: the loader resolves the same name to the same folder.
    process.env.DEEPREDUCE_ZOO = env.DEEPREDUCE_ZOO;
    process.env.DEEPREDUCE_CACHE = env.DEEPREDUCE_CACHE;
    assert.equal(resolveModelDir('zoo:m1'), r.model);
    assert.equal(resolveModelDir(join(tmp, 'm')), join(tmp, 'm'), 'a path stays a path');
    assert.throws(() => resolveModelDir('zoo:nope'), /zoo:nope: no such model in the zoo .*it has: m1/);

    for (const args of [
      ['pi', 'serve', '--model', 'zoo:nope', '--port', '0', '--insecure'],
      ['export', '--model', 'zoo:nope', '--out', join(tmp, 'x.onnx')],
      ['train', '--init', 'zoo:nope', '--out', join(tmp, 't')],
    ]) {
      const p = spawnSync(process.execPath, [main, ...args], { env, encoding: 'utf8', timeout: 60_000 });
      assert.equal(p.status, 1, `${args.join(' ')}: ${p.stderr}`);
      assert.match(p.stderr, /zoo:nope: no such model in the zoo .*it has: m1/, args.join(' '));
    }
    const list = spawnSync(process.execPath, [main, 'zoo', 'list', '--json'], { env, encoding: 'utf8' });
    assert.equal(list.status, 0, list.stderr);
    assert.equal(JSON.parse(list.stdout).models[0].name, 'm1');
  } finally {
    delete process.env.DEEPREDUCE_ZOO;
    delete process.env.DEEPREDUCE_CACHE;
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('zoo add --fp16 refuses weights whose accuracy fp16 changes, and writes nothing', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'zoo-test-'));
  const root = join(tmp, 'zoo');
  try {
    const labels = Array.from(loadDataset('fashion-mnist', 'test').labels.subarray(0, LIMIT));
    const count = (c: number) => labels.filter((y) => y === c).length;
    // Two classes with different counts; fp32 predicts the later one (1 + 2^-20 > 1), fp16 rounds both biases to 1
    // and argmax takes the first: the accuracy moves by |count(a) - count(b)| / LIMIT.
    const [a, b] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
      .flatMap((x) => [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((y) => [x, y] as const))
      .find(([x, y]) => x < y && count(x) !== count(y))!;
    const bias = Array(10).fill(0);
    bias[a] = 1;
    bias[b] = 1 + 2 ** -20;
    modelDir(join(tmp, 'm'), bias);
    await assert.rejects(
      zooAdd(join(tmp, 'm'), { name: 'bad', fp16: true, tolerance: 0.1, limitTest: LIMIT }, root),
      /accuracy .* with fp16 weights against .* in fp32 differs by .* more than --tolerance 0\.1; nothing added/,
    );
    assert.ok(!existsSync(join(root, 'bad')));
    assert.ok(!existsSync(root) || readdirSync(root).length === 0, 'nothing written');
    // In fp32 it is accepted as it is.
    const e = await zooAdd(join(tmp, 'm'), { name: 'bad', tolerance: 0.1, limitTest: LIMIT }, root);
    assert.equal(e.storage, 'fp32');
    assert.equal(e.accuracy.test, count(b) / LIMIT);
    await assert.rejects(zooAdd(join(tmp, 'm'), { name: 'bad', tolerance: 0.1, limitTest: LIMIT }, root), /exists/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("the demo's headline table: ReLU, accuracy and latency ratios against the teacher (the first row)", () => {
  const pi = (off: number, on: number) =>
    ({ offlineS: { mean: off }, onlineS: { mean: on }, agree: 20, n: 20 }) as unknown as PiMeasurement;
  const lines = headlineTable([
    { name: 'teacher', description: '', relus: 139264, acc: 0.93, testImages: 10000, pi: pi(6, 2) },
    { name: 'f6k', description: '', relus: 6144, acc: 0.9, testImages: 10000, pi: pi(3, 0.5) },
  ]);
  assert.match(
    lines[0]!,
    /model .* ReLUs .* fewer ReLUs .* accuracy \(10,000\) .* total s .* online s .* speed-up total .* speed-up online/,
  );
  assert.match(lines[2]!, /teacher +139,264 +1\.00x +93\.00% +0\.00 +20\/20 +8\.00 +2\.00 +1\.00x +1\.00x/);
  assert.match(lines[3]!, /f6k +6,144 +22\.67x +90\.00% +-3\.00 +20\/20 +3\.50 +0\.50 +2\.29x +4\.00x/);
  // the picks: the fastest within each tolerance, not the one with the fewest ReLUs
  const rows = [
    { name: 'teacher', description: '', relus: 139264, acc: 0.934, testImages: 10000, pi: pi(6, 2) },
    { name: 'near', description: '', relus: 30000, acc: 0.926, testImages: 10000, pi: pi(2.5, 1) },
    { name: 'fast', description: '', relus: 40000, acc: 0.92, testImages: 10000, pi: pi(1, 0.5) },
    { name: 'few', description: '', relus: 6144, acc: 0.9, testImages: 10000, pi: pi(3, 0.4) },
  ];
  assert.deepEqual(headlinePicks(rows, [1, 3, 0.1]), [
    'pick within 1 point (fastest in total, as measured): near, 92.60%, 2.29x faster in total, 2.00x online',
    'pick within 3 points (fastest in total, as measured): fast, 92.00%, 5.33x faster in total, 4.00x online',
    'within 0.1 points of the teacher: no reduced model',
  ]);
});
