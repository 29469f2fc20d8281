import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { manualSeed, noGrad, randn, setNumThreads, tidy } from '../../src/engine/index.js';
import {
  buildNetwork,
  compileInference,
  countByForward,
  countRelus,
  cullStages,
  decodePartial,
  describeNetwork,
  encodePartial,
  fullMask,
  loadMask,
  maskFromDocument,
  maskToDocument,
  removeSites,
  saveMask,
  setSiteElements,
  siteShapes,
  specFor,
  thin,
  type ReluMask,
} from '../../src/models/index.js';
import { registerCountCommand } from '../../src/cli/count.js';

setNumThreads(1);
const spec = specFor('resnet20', { alpha: 0.5, numClasses: 10, inChannels: 1 });
const shapes = siteShapes(spec);
const numel = (s: string) => shapes.get(s)!.reduce((a, b) => a * b, 1);

/** stem removed; stage1.block0.relu1 keeps channels 1 and 5; stage2.block1.relu2 every third element; stage3 culled. */
function partialMask(): ReluMask {
  let m = cullStages(removeSites(fullMask(spec), ['stem.relu']), [3]);
  const [c, h, w] = shapes.get('stage1.block0.relu1')! as [number, number, number];
  const chans = [1, 5].flatMap((ch) => Array.from({ length: h * w }, (_, i) => ch * h * w + i));
  m = setSiteElements(m, 'stage1.block0.relu1', [c, h, w], Uint32Array.from(chans));
  const n2 = numel('stage2.block1.relu2');
  m = setSiteElements(
    m,
    'stage2.block1.relu2',
    shapes.get('stage2.block1.relu2')!,
    Uint32Array.from({ length: Math.ceil(n2 / 3) }, (_, i) => 3 * i),
  );
  return m;
}

test('partial sites: exact counts by shape inference and by a forward pass, per site and in total', () => {
  const m = partialMask();
  const c = countRelus({ ...spec, mask: m });
  const s1 = c.sites.find((s) => s.site === 'stage1.block0.relu1')!;
  assert.deepEqual([s1.partial, s1.enabled, s1.relus, s1.elements], [true, true, 2 * 32 * 32, 8 * 32 * 32]);
  const s2 = c.sites.find((s) => s.site === 'stage2.block1.relu2')!;
  assert.deepEqual([s2.partial, s2.relus], [true, Math.ceil(numel('stage2.block1.relu2') / 3)]);
  const whole = m.kept.reduce((t, s) => t + numel(s), 0);
  assert.equal(c.total, whole + s1.relus + s2.relus);
  assert.equal(
    c.totalAllSites,
    [...shapes.keys()].reduce((t, s) => t + numel(s), 0),
  );
  assert.ok(c.flops > 2 * c.macs);
  const net = buildNetwork({ ...spec, mask: m });
  try {
    const f = countByForward(net);
    assert.equal(f.total, c.total);
    for (const s of f.sites) assert.equal(s.relus, c.sites.find((x) => x.site === s.site)!.relus, s.site);
    const relus = describeNetwork(net).filter((n) => n.op === 'relu');
    assert.deepEqual(
      relus.filter((n) => n.kept).map((n) => [n.site, n.kept!.length]),
      [
        ['stage1.block0.relu1', s1.relus],
        ['stage2.block1.relu2', s2.relus],
      ],
    );
    assert.equal(relus.find((n) => n.site === 'stage3.block0.relu1')!.enabled, false);
    assert.equal(
      relus.find((n) => n.site === 'stage2.block0.relu1')!.kept,
      undefined,
      'a whole site has no index list',
    );
  } finally {
    net.dispose();
  }
});

test('a partial site is a ReLU on its kept elements only, in training forward and in compiled inference', () => {
  manualSeed(3);
  const m = partialMask();
  const net = buildNetwork({ ...spec, mask: m });
  try {
    const site = net.sites().find((s) => s.site === 'stage2.block1.relu2')!;
    noGrad(() =>
      tidy(() => {
        const x = randn([2, ...shapes.get('stage2.block1.relu2')!]);
        const y = site.forward(x).toArray() as Float32Array;
        const xs = x.toArray() as Float32Array;
        const n = numel('stage2.block1.relu2');
        for (let i = 0; i < xs.length; i++)
          assert.equal(y[i], (i % n) % 3 === 0 ? Math.max(0, xs[i]!) : xs[i], `element ${i}`);
        const inp = randn([3, 1, 32, 32]);
        const ref = net.eval().forward(inp).toArray() as Float32Array;
        for (const fuse of [false, 'direct'] as const) {
          const run = compileInference(net, { fuse });
          const got = run(inp).toArray() as Float32Array;
          run.dispose();
          const d = ref.reduce((a, v, i) => Math.max(a, Math.abs(v - got[i]!)), 0);
          assert.ok(d < 1e-4, `compiled (fuse ${fuse}) vs forward: ${d}`);
        }
      }),
    );
  } finally {
    net.dispose();
  }
});

test('mask documents: channel lists for whole channels, bitmaps otherwise; a round trip gives the same mask', () => {
  const m = partialMask();
  const doc = maskToDocument(m);
  assert.deepEqual(doc.partial!['stage1.block0.relu1'], {
    shape: shapes.get('stage1.block0.relu1'),
    relus: 2048,
    channels: [1, 5],
  });
  const b = doc.partial!['stage2.block1.relu2']!;
  assert.ok('bitmap' in b && typeof b.bitmap === 'string');
  assert.equal(b.relus, Math.ceil(numel('stage2.block1.relu2') / 3));
  assert.ok(!doc.kept!.includes('stage1.block0.relu1'), 'a partial site is not in kept');
  const back = maskFromDocument(JSON.parse(JSON.stringify(doc)), spec);
  assert.deepEqual(back.kept, m.kept);
  for (const [s, p] of Object.entries(m.partial!))
    assert.deepEqual([...back.partial![s]!.elements], [...p.elements], s);
  const p = decodePartial(encodePartial({ shape: [3, 1, 3], elements: Uint32Array.from([0, 4, 8]) }), [3, 1, 3], 'x');
  assert.deepEqual([...p.elements], [0, 4, 8]);
  // culling, thinning and removing drop partial entries of the sites they remove
  assert.equal(cullStages(m, [2]).partial?.['stage2.block1.relu2'], undefined);
  assert.equal(thin(m, 'relu1').partial?.['stage2.block1.relu2'], undefined);
  assert.ok(thin(m, 'relu1').partial?.['stage1.block0.relu1']);
  assert.equal(removeSites(m, ['stage1.block0.relu1']).partial?.['stage1.block0.relu1'], undefined);
});

test('a mask JSON with wrong channel indices, sizes or counts fails naming the site', () => {
  const good = maskToDocument(partialMask());
  const bad = (edit: (d: any) => void) => {
    const d = JSON.parse(JSON.stringify(good));
    edit(d);
    return () => maskFromDocument(d, spec, 'mask m.json');
  };
  const s1 = 'stage1.block0.relu1',
    s2 = 'stage2.block1.relu2';
  assert.throws(
    bad((d) => (d.partial[s1].channels = [1, 8])),
    /mask m\.json: partial site 'stage1\.block0\.relu1': channel index 8 out of range \(the site has 8 channels, 0\.\.7\)/,
  );
  assert.throws(
    bad((d) => (d.partial[s1].channels = [-1])),
    /partial site 'stage1\.block0\.relu1': channel index -1 out of range/,
  );
  assert.throws(
    bad((d) => (d.partial[s1].channels = [2, 2])),
    /partial site 'stage1\.block0\.relu1': channel 2 is listed twice/,
  );
  assert.throws(
    bad((d) => (d.partial[s1].shape = [16, 32, 32])),
    /partial site 'stage1\.block0\.relu1': shape \[16, 32, 32\] does not match the network's site, which is \[8, 32, 32\]/,
  );
  assert.throws(
    bad((d) => (d.partial[s1].relus = 2000)),
    /partial site 'stage1\.block0\.relu1': 'relus' is 2000 but the channels keep 2048 elements/,
  );
  assert.throws(
    bad((d) => (d.partial[s2].bitmap = d.partial[s2].bitmap.slice(0, -8))),
    /partial site 'stage2\.block1\.relu2': bitmap holds \d+ bytes, the site's 4096 elements need 512/,
  );
  assert.throws(
    bad((d) => (d.partial[s2].bitmap = '%%%%')),
    /partial site 'stage2\.block1\.relu2': 'bitmap' is not base64/,
  );
  assert.throws(
    bad((d) => {
      d.partial[s2].channels = [0];
    }),
    /partial site 'stage2\.block1\.relu2': give exactly one of 'channels' or 'bitmap'/,
  );
  assert.throws(
    bad((d) => d.kept.push(s1)),
    /site\(s\) stage1\.block0\.relu1 are listed in 'kept' and in 'partial'/,
  );
  assert.throws(
    bad((d) => (d.partial['stage9.block0.relu1'] = d.partial[s1])),
    /unknown ReLU site\(s\) stage9\.block0\.relu1/,
  );
  // a 'removed' document: partial sites are neither removed nor kept whole
  const rem = { arch: spec.arch, removed: ['stem.relu'], partial: good.partial };
  const m = maskFromDocument(rem, spec);
  assert.ok(!m.kept.includes(s1) && m.kept.includes('stage3.block0.relu1') && m.partial![s1]);
});

test('deepreduce count reads a partial mask file and counts it exactly; a wrong one is named with its file and site', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'count-partial-'));
  try {
    const m = partialMask();
    const file = join(dir, 'm.json');
    saveMask(file, m);
    assert.deepEqual(
      [...loadMask(file, spec).partial!['stage1.block0.relu1']!.elements],
      [...m.partial!['stage1.block0.relu1']!.elements],
    );
    const run = async (...extra: string[]) => {
      let out = '';
      const program = new Command('deepreduce')
        .exitOverride()
        .configureOutput({ writeErr: () => {}, writeOut: () => {} });
      registerCountCommand(program, { out: (s) => void (out += s) });
      await program.parseAsync(
        ['count', '--arch', 'resnet20', '--alpha', '0.5', '--classes', '10', '--mask', file, ...extra],
        { from: 'user' },
      );
      return out;
    };
    const j = JSON.parse(await run('--json'));
    assert.equal(j.total, countRelus({ ...spec, mask: m }).total);
    assert.equal(j.partial['stage1.block0.relu1'], 2048);
    const out = await run();
    assert.match(out, /stage1\.block0\.relu1\s+8x32x32\s+8,192\s+partial\s+2,048/);
    assert.match(
      out,
      new RegExp(`ReLUs: ${j.total.toLocaleString('en-US')} \\(all sites: [\\d,]+; 2 partial sites\\)`),
    );
    const doc = JSON.parse(JSON.stringify(maskToDocument(m)));
    doc.partial['stage1.block0.relu1'].channels = [1, 9];
    writeFileSync(file, JSON.stringify(doc));
    await assert.rejects(
      run(),
      new RegExp(
        `mask ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: partial site 'stage1\\.block0\\.relu1': channel index 9 out of range`,
      ),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
