// Reshaped networks (per-stage widths) and their channel-slicing initialisation from a wider trained network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchNorm2d, keep, manualSeed, noGrad, rand, randn, tidy, type Tensor } from '../../src/engine/index.js';
import {
  buildNetwork,
  countByForward,
  countRelus,
  cullStages,
  describeNetwork,
  dropBlocks,
  fullMask,
  linearLayers,
  removeSites,
  scaleWidth,
  selectChannels,
  siteNames,
  siteShapes,
  sliceStateDict,
  specFor,
  type NetSpec,
  type Network,
} from '../../src/models/index.js';

const small = (over: Partial<NetSpec> = {}): NetSpec =>
  specFor('resnet18', { alpha: 0.25, numClasses: 10, inChannels: 1, inputSize: 8, ...over });
/** `base` with explicit channels per stage (alpha 1), as the reshape method builds it. */
const reshaped = (base: NetSpec, channels: number[]): NetSpec =>
  specFor(base.arch, { ...base, alpha: 1, widths: channels, mask: undefined });

function randomizeBn(net: Network): void {
  noGrad(() =>
    tidy(() => {
      for (const [, m] of net.modules()) {
        if (!(m instanceof BatchNorm2d)) continue;
        const c = [m.channels];
        m.weight.copy_(rand(c).add(0.5));
        m.bias.copy_(randn(c).mul(0.1));
        m.runningMean.copy_(randn(c).mul(0.1));
        m.runningVar.copy_(rand(c).add(0.5));
      }
    }),
  );
}

const rows = (t: Tensor, dim: 0 | 1): number[] => {
  // L1 norm of each slice along dim
  const s = t.shape,
    a = t.toArray() as Float32Array;
  const inner = s.slice(dim + 1).reduce((p, q) => p * q, 1),
    outer = s.slice(0, dim).reduce((p, q) => p * q, 1);
  const out = new Array<number>(s[dim]!).fill(0);
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < s[dim]!; c++)
      for (let i = 0; i < inner; i++) out[c]! += Math.abs(a[(o * s[dim]! + c) * inner + i]!);
  return out;
};

test('channel slicing with unchanged widths copies every weight: the same function, bit for bit', () => {
  manualSeed(3);
  const base = small();
  const teacher = buildNetwork(base);
  randomizeBn(teacher);
  teacher.eval();
  const same = reshaped(
    base,
    base.widths.map((w) => scaleWidth(w, base.alpha)),
  );
  const student = buildNetwork(same).eval();
  const sd = teacher.stateDict();
  tidy(() => student.loadStateDict(sliceStateDict(sd, base, same)));
  const x = randn([4, 1, 8, 8]);
  const d = tidy(() => teacher.forward(x).sub(student.forward(x)).abs().amax().item());
  assert.equal(d, 0);
  // and a mutation: a different student (fresh weights) does differ, so the check can fail
  const other = buildNetwork(same).eval();
  assert.ok(tidy(() => teacher.forward(x).sub(other.forward(x)).abs().amax().item()) > 1e-3);
  for (const n of [teacher, student, other]) n.dispose();
  x.dispose();
});

test('channel slicing to narrower stages keeps the top-L1 filters and the matching inputs and BN channels', () => {
  manualSeed(4);
  const base = small(); // 16, 32, 64, 128 channels
  const teacher = buildNetwork(base);
  randomizeBn(teacher);
  const narrow = reshaped(base, [16, 32, 16, 64]);
  const sd = teacher.stateDict();
  const sliced = tidy(() => {
    const m = sliceStateDict(sd, base, narrow);
    for (const t of m.values()) keep(t);
    return m;
  });
  const student = buildNetwork(narrow);
  tidy(() => student.loadStateDict(sliced)); // every shape fits
  // A block-internal group: layer3.0.conv1's output channels, scored by its own filters alone.
  const w = sd.get('layer3.0.conv1.weight')!;
  const l1 = rows(w, 0);
  const top = l1
    .map((v, i) => [v, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, 16)
    .map(([, i]) => i)
    .sort((a, b) => a - b);
  const chosen = [...selectChannels(sd, base, narrow).values()];
  assert.ok(
    chosen.some((k) => k.join() === top.join()),
    'layer3.0.conv1 keeps its 16 filters of largest L1 norm',
  );
  const sw = sliced.get('layer3.0.conv1.weight')!;
  assert.deepEqual(sw.shape, [16, 32, 3, 3]); // input: stage 2's 32 channels, untouched
  const full = w.toArray() as Float32Array,
    cut = sw.toArray() as Float32Array;
  const per = 32 * 9;
  top.forEach((c, j) => assert.deepEqual(cut.slice(j * per, (j + 1) * per), full.slice(c * per, (c + 1) * per)));
  // its BN and the next conv's inputs follow the same channels
  const bm = sd.get('layer3.0.bn1.running_mean')!.toArray() as Float32Array;
  assert.deepEqual(
    Array.from(sliced.get('layer3.0.bn1.running_mean')!.toArray() as Float32Array),
    top.map((c) => bm[c]!),
  );
  assert.deepEqual(sliced.get('layer3.0.conv2.weight')!.shape, [16, 16, 3, 3]);
  // Stage 3's residual stream: scored by the sum over its writers (downsample, both blocks' conv2).
  const writers = ['layer3.0.downsample.0.weight', 'layer3.0.conv2.weight', 'layer3.1.conv2.weight'];
  const sum = writers.map((k) => rows(sd.get(k)!, 0)).reduce((a, b) => a.map((v, i) => v + b[i]!));
  const topStream = sum
    .map((v, i) => [v, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, 16)
    .map(([, i]) => i)
    .sort((a, b) => a - b);
  assert.ok(chosen.some((k) => k.join() === topStream.join()));
  // stage 4 reads the kept stream channels as its inputs
  assert.deepEqual(sliced.get('layer4.0.conv1.weight')!.shape, [64, 16, 3, 3]);
  assert.deepEqual(sliced.get('fc.weight')!.shape, [10, 64]);
  // widening is refused
  assert.throws(() => sliceStateDict(sd, base, reshaped(base, [16, 32, 128, 128])), /cannot widen/);
  for (const t of sliced.values()) t.dispose();
  teacher.dispose();
  student.dispose();
});

test('a reshaped network: the teacher-s site names, shapes from its widths, counts by graph = by forward', () => {
  const base = small();
  const r = reshaped(base, [8, 32, 16, 64]);
  assert.deepEqual(siteNames(r), siteNames(base));
  const shapes = siteShapes(r);
  assert.deepEqual(shapes.get('stage1.block0.relu1'), [8, 8, 8]);
  assert.deepEqual(shapes.get('stage3.block1.relu2'), [16, 2, 2]);
  const mask = cullStages(removeSites(fullMask(r), ['stem.relu']), [3]);
  const spec = { ...r, mask };
  const c = countRelus(spec);
  const expected = [...shapes]
    .filter(([s]) => mask.kept.includes(s))
    .reduce((t, [, sh]) => t + sh.reduce((p, q) => p * q, 1), 0);
  assert.equal(c.total, expected);
  const net = buildNetwork(spec);
  assert.equal(countByForward(net).total, c.total);
  // the graph's convs carry the reshaped channels
  const conv = describeNetwork(net).find((n) => n.name === 'layer3.0.conv1')!;
  assert.deepEqual(conv.outShape, [16, 2, 2]);
  net.dispose();
  // culling stage 3 and the stem ReLU leaves fusable linear ranges: fewer linear operators than conv/fc layers
  const layers = c.layers.length;
  assert.equal(layers, 21); // 17 convs of the trunk + 3 downsamples + fc
  assert.equal(linearLayers({ ...r, mask: undefined }), 21); // every site kept: nothing fuses
  // stem ReLU gone: the stem and stage1.block0.conv1 fuse (-1); stage 3 culled: its 6 convs with stage 4's first
  // conv1 and downsample (7 convs), all reading stage 2's output, become one operator (-6)
  assert.equal(linearLayers(spec), 21 - 1 - 6);
  assert.equal(linearLayers({ ...r, mask: removeSites(fullMask(r), ['stage2.block1.relu1']) }), 20);
});

test('slicing to fewer blocks per stage keeps the first blocks of each stage, unchanged; deeper is refused', () => {
  manualSeed(5);
  const base = small(); // blocks 2, 2, 2, 2
  const teacher = buildNetwork(base);
  randomizeBn(teacher);
  const sd = teacher.stateDict();
  for (const blocks of [
    [1, 1, 1, 1],
    [2, 1, 2, 1],
  ]) {
    const to = specFor(base.arch, { ...base, blocks, rho: 0.5 });
    const shallow = buildNetwork(to);
    const sliced = tidy(() => {
      const m = sliceStateDict(sd, base, to);
      for (const t of m.values()) keep(t);
      return m;
    });
    // exactly the shallow network's tensors, each the teacher's own
    assert.deepEqual([...sliced.keys()].sort(), [...shallow.stateDict().keys()].sort());
    for (const [k, t] of sliced)
      assert.deepEqual(Array.from(t.toArray() as Float32Array), Array.from(sd.get(k)!.toArray() as Float32Array), k);
    assert.ok(!sliced.has('layer2.1.conv1.weight') || blocks[1] === 2);
    tidy(() => shallow.loadStateDict(sliced));
    for (const t of sliced.values()) t.dispose();
    shallow.dispose();
  }
  // with narrower widths too: the kept blocks, then the channel slicing
  const both = reshaped({ ...base, blocks: [1, 1, 1, 1] }, [8, 16, 32, 64]);
  const net = buildNetwork(both);
  tidy(() => net.loadStateDict(sliceStateDict(sd, base, both)));
  net.dispose();
  assert.throws(() => sliceStateDict(sd, base, { ...base, blocks: [3, 2, 2, 2] }), /not a prefix/);
  assert.throws(() => dropBlocks(sd, base, [1, 1]), /not a prefix/);
  teacher.dispose();
});
