// Partial ReLU sites (learned masks below the site level) under PI: the plan carries each partial site's kept
// elements (channel list or bitmap) and checkPlan validates them naming the site; both ReLU protocols run on the kept
// elements only (bytes proportional to the kept count) and pass the others through as culled sites do; results
// equal the fixed-point reference: kept elements exactly (gc) or within the OT's 0/+1 ULP, passed-through ones
// within local truncation's 0/+1 ULP, on HE preprocessing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  buildNetwork,
  countRelus,
  describeNetwork,
  fullMask,
  removeSites,
  runGraph,
  setSiteElements,
  siteShapes,
  specFor,
  type NetSpec,
  type ReluMask,
} from '../../src/models/index.js';
import { manualSeed, noGrad, tensor, tidy } from '../../src/engine/index.js';
import { checkPlan, reluElements, remaskedLinears, type PublicPlan, type ServerModel } from '../../src/pi/plan.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import { runClient, serveClient, type PartyReport, type SessionHooks } from '../../src/pi/protocol.js';
import { quantize, r64Add, r64Sar, r64ToBig, type R64 } from '../../src/pi/fixed.js';
import { reluShiftClear } from '../../src/pi/plan.js';
import { channelPair } from '../../src/pi/transport/channel.js';
import { simulate } from './helpers/simulation.js';
import { leakedWords, secretWords } from './helpers/transcript.js';
import { byteHistogram, CHI2_255_BOUND, chiSquareUniform } from './helpers/stats.js';

manualSeed(11);
const base = specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] });
const shapes = siteShapes(base);
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const range = (n: number) => Uint32Array.from({ length: n }, (_, i) => i);
const CHANNELS = 'stem.relu',
  BITMAP = 'stage1.block0.relu1',
  HALF = 'stage1.block0.relu2',
  CULLED = 'stage3.block0.relu1';

/** Channel list (stem: channels 1 and 3), a scattered bitmap, the first half of a site, a culled site, the rest whole. */
function partialMask(): ReluMask {
  let m = removeSites(fullMask(base), [CULLED]);
  const [c, h, w] = shapes.get(CHANNELS)! as [number, number, number];
  assert.equal(c, 4);
  m = setSiteElements(
    m,
    CHANNELS,
    [c, h, w],
    Uint32Array.from([1, 3].flatMap((ch) => Array.from(range(h * w), (i) => ch * h * w + i))),
  );
  const sb = shapes.get(BITMAP)!;
  m = setSiteElements(
    m,
    BITMAP,
    sb,
    range(numel(sb)).filter((i) => (i * 2654435761) % 7 < 3),
  );
  const sh = shapes.get(HALF)!;
  return setSiteElements(m, HALF, sh, range(numel(sh) / 2));
}
const partialSpec: NetSpec = { ...base, mask: partialMask() };

function model(spec: NetSpec) {
  const net = buildNetwork(spec).eval();
  const nodes = describeNetwork(net);
  const m = compilePlan(net);
  const float = (x: Float32Array) =>
    tidy(() =>
      noGrad(() => runGraph(nodes, tensor(x, [1, spec.inChannels, spec.inputSize, spec.inputSize])).toFloat32()),
    );
  return { m, float };
}
const part = model(partialSpec),
  full = model(base);
after(() => {
  part.m.dispose();
  full.m.dispose();
});
const opOf = (p: PublicPlan, name: string) => p.ops.findIndex((o) => o.name === name);

const image = (seed: number) => Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(seed * 1000 + i * 1.7) * 2);

test('the plan carries partial sites as channel lists or bitmaps, counts exact; a received plan round-trips', () => {
  const p = part.m.plan,
    mask = partialSpec.mask!;
  const ch = p.ops[opOf(p, CHANNELS)]!,
    bm = p.ops[opOf(p, BITMAP)]!,
    half = p.ops[opOf(p, HALF)]!;
  assert.ok(ch.op === 'relu' && ch.kept && 'channels' in ch.kept);
  assert.deepEqual(ch.kept, { relus: 2 * 64, channels: [1, 3] });
  assert.ok(bm.op === 'relu' && bm.kept && 'bitmap' in bm.kept);
  assert.equal(p.ops[opOf(p, CULLED)]!.op, 'cull');
  assert.equal(p.relus, countRelus(partialSpec).total);
  for (const [site, op] of [
    [CHANNELS, ch],
    [BITMAP, bm],
    [HALF, half],
  ] as const) {
    assert.ok(op.op === 'relu');
    assert.deepEqual(reluElements(op), mask.partial![site]!.elements, site);
  }
  // Whole sites carry no list.
  assert.ok(p.ops.filter((o) => o.op === 'relu' && !o.kept).length >= 3);
  const got = checkPlan(JSON.parse(JSON.stringify(p)), 'peer');
  assert.deepEqual(got, p);
  const gb = got.ops[opOf(got, BITMAP)]!;
  assert.ok(gb.op === 'relu');
  assert.deepEqual(reluElements(gb), mask.partial![BITMAP]!.elements);
});

/** The plan with `edit` applied to one op and its digest recomputed, so that the schema check must catch it. */
function corrupt(p: PublicPlan, name: string, edit: (o: Record<string, any>) => void): unknown {
  const q = JSON.parse(JSON.stringify(p)) as Record<string, any>;
  edit(q.ops[opOf(p, name)]);
  const { digest: _d, ...body } = q;
  q.digest = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16);
  return q;
}

test('checkPlan refuses a wrong partial entry, naming the op and the site', () => {
  const p = part.m.plan;
  const n = numel(shapes.get(BITMAP)!);
  const cases: [string, (o: Record<string, any>) => void, RegExp][] = [
    [
      CHANNELS,
      (o) => {
        o.kept.channels = [1, 4];
      },
      /channel index 4 out of range/,
    ],
    [
      CHANNELS,
      (o) => {
        o.kept.channels = [1, 1];
      },
      /channel 1 is listed twice/,
    ],
    [
      CHANNELS,
      (o) => {
        o.kept.channels = [0, 1, 2, 3, 0];
      },
      /kept\.channels is not an array of at most 4/,
    ],
    [
      CHANNELS,
      (o) => {
        o.kept.relus = 3 * 64;
      },
      /'relus' is 192 but the channels keep 128/,
    ],
    [
      CHANNELS,
      (o) => {
        o.kept.relus = 256;
      },
      /kept\.relus = 256 is not an integer in \[1, 255\]/,
    ],
    [
      BITMAP,
      (o) => {
        o.kept.relus += 1;
      },
      /but the bitmap keep/,
    ],
    [
      BITMAP,
      (o) => {
        o.kept.bitmap = o.kept.bitmap.slice(4);
      },
      new RegExp(`kept\\.bitmap is not a base64 string of \\d+ characters \\(${n} bits\\)`),
    ],
    [
      BITMAP,
      (o) => {
        o.kept.bitmap = `!${o.kept.bitmap.slice(1)}`;
      },
      /'bitmap' is not base64/,
    ],
    [
      BITMAP,
      (o) => {
        o.kept.channels = [0];
      },
      /exactly one of 'channels' or 'bitmap'/,
    ],
    [
      BITMAP,
      (o) => {
        o.kept.extra = 1;
      },
      /kept has an unexpected field 'extra'/,
    ],
    [
      BITMAP,
      (o) => {
        o.kept = [1];
      },
      /kept is not an object/,
    ],
  ];
  for (const [site, edit, re] of cases) {
    assert.throws(
      () => checkPlan(corrupt(p, site, edit), 'peer'),
      (e: Error) => {
        assert.match(e.message, re);
        assert.match(
          e.message,
          new RegExp(`op \\d+ \\(relu\\) \\(ReLU site ${site.replace(/\./g, '\\.')}\\)`),
          e.message,
        );
        return true;
      },
    );
  }
  // A partial count that the plan's total does not add up to.
  const q = corrupt(p, HALF, () => {}) as Record<string, any>;
  q.relus += 1;
  assert.throws(() => checkPlan(q, 'peer'), /totals \(relus/);
});

/** One session; `vals` collects each party's shares per op (server online, client offline) to open them. */
async function session(m: ServerModel, x: Float32Array, relu: string, preprocess = 'he') {
  const sv = new Map<number, R64>(),
    cv = new Map<number, R64>();
  const hooks = (into: Map<number, R64>): SessionHooks => ({ onValue: (i, v) => into.set(i, v) });
  const [s, c] = channelPair();
  const [server, client] = await Promise.all([
    serveClient(s, m, { preprocess, relu, hooks: hooks(sv) }),
    runClient(c, x, { preprocess, relu, hooks: hooks(cv) }),
  ]);
  const open = (i: number) => r64ToBig(r64Add(sv.get(i)!, cv.get(i)!));
  return { server, client, open };
}

const diffs = (a: BigInt64Array, b: BigInt64Array, idx: Iterable<number>) =>
  [...new Set(Array.from(idx, (i) => Number(a[i]! - b[i]!)))].sort();

for (const relu of ['gc', 'ot']) {
  test(`${relu} on HE preprocessing: partial sites evaluate ReLU on kept elements only and equal the fixed-point reference`, async () => {
    const p = part.m.plan,
      x = image(3);
    const { client, open } = await session(part.m, x, relu);
    for (const name of [CHANNELS, BITMAP, HALF]) {
      const i = opOf(p, name),
        o = p.ops[i]!;
      assert.ok(o.op === 'relu');
      const el = reluElements(o)!,
        keptSet = new Set(el);
      const inp = open(o.input),
        out = open(i);
      const inR = { lo: new Uint32Array(inp.length), hi: new Uint32Array(inp.length) };
      inp.forEach((v, k) => {
        const u = BigInt.asUintN(64, v);
        inR.lo[k] = Number(u & 0xffffffffn);
        inR.hi[k] = Number(u >> 32n);
      });
      const relued = r64ToBig(reluShiftClear(inR, o.shift)),
        shifted = r64ToBig(r64Sar(inR, o.shift));
      const passed = Array.from(range(o.size)).filter((k) => !keptSet.has(k));
      // Kept: ReLU of the opened input; gc bit for bit, ot 0 or +1 ULP (its local truncation before the comparison).
      assert.deepEqual(
        diffs(out, relued, el),
        relu === 'gc' ? [0] : diffs(out, relued, el).filter((d) => d === 0 || d === 1),
        `${name}: kept`,
      );
      assert.ok(diffs(out, relued, el).includes(0));
      // Passed through: the identity, truncated locally (0 or +1 ULP), never a ReLU: negative inputs stay negative.
      const pd = diffs(out, shifted, passed);
      assert.ok(
        pd.every((d) => d === 0 || d === 1),
        `${name}: passed-through diffs ${pd}`,
      );
      assert.ok(
        passed.some((k) => inp[k]! < 0n),
        `${name}: the test needs negative passed-through inputs`,
      );
      for (const k of passed)
        if (inp[k]! < -(1n << BigInt(o.shift + 1))) assert.ok(out[k]! < 0n, `${name}: element ${k} was rectified`);
      // The protocol saw the kept count only.
      const e = client.client.entries.find((s) => s.phase === 'online' && s.op === i)!;
      assert.equal(e.relus, el.length);
    }
    // End to end: within the culled-site tolerance of the reference, and the float model's top-1.
    const ref = referenceForward(part.m, quantize(x, p.fixed.f));
    const sec = r64ToBig(client.out),
      rf = r64ToBig(ref.out);
    const d = Math.max(...Array.from(sec, (v, k) => Math.abs(Number(v - rf[k]!))));
    assert.ok(d < 2 ** (p.ops[p.ops.length - 1]!.scale - 8), `max diff ${d} ULPs`);
    const fl = part.float(x);
    fl.forEach((v, k) =>
      assert.ok(Math.abs(v - client.logits[k]!) < 0.02, `logit ${k}: float ${v} secure ${client.logits[k]}`),
    );
    for (const r of ref.reluBits) assert.ok(r.bits < r.width - 1, `${r.name}: headroom`);
  });
}

/** Client-server bytes of one op (offline + online, both directions). */
const opBytes = (r: PartyReport, op: number) =>
  r.entries.filter((e) => e.op === op).reduce((a, e) => a + e.bytesSent + e.bytesRecv, 0);

// HALF keeps 128 of 256 elements: a multiple of the 128 rows IKNP pads its OT matrices to, so nothing but framing
// is fixed per op.
test('the ReLU bytes of a partial site are proportional to its kept count, for gc, ot and ot-online', async () => {
  const i = opOf(part.m.plan, HALF),
    j = opOf(full.m.plan, HALF);
  assert.equal(i, j);
  for (const relu of ['gc', 'ot', 'ot-online']) {
    const [h, f] = [await session(part.m, image(5), relu), await session(full.m, image(5), relu)];
    const half = opBytes(h.client.client, i),
      whole = opBytes(f.client.client, j);
    assert.ok(
      whole > 0 && Math.abs(half / whole - 0.5) < 0.01,
      `${relu}: ${half} bytes for half the site, ${whole} for the whole`,
    );
  }
});

// A layer whose input waits for an HE answer (after a partial or culled site) uploads a fresh mask, so its HE work
// does not wait for the layer before; the client then sends the server the difference from its real input share.
// Mutation tried: sending the client's share itself instead of the difference fails both the uniformity and the
// leak check below.
test('a layer after a partial or culled site is re-masked: results still equal the reference; the differences hold no word of a share or plain value and look uniform', async () => {
  const p = part.m.plan;
  const rm = remaskedLinears(p);
  const names = p.ops.flatMap((o, i) => (rm[i] ? [o.name] : []));
  // after the stem (partial), the two partial sites of stage 1, and the culled site of stage 3
  const reads = (i: number) => p.ops[(p.ops[i] as { input: number }).input]!;
  for (const [i, o] of p.ops.entries()) {
    if (o.op !== 'conv' && o.op !== 'fc') continue;
    const inp = reads(i);
    if (inp.op === 'relu' && !inp.kept) assert.equal(rm[i], false, `${o.name} reads a whole site`);
    if ((inp.op === 'relu' && inp.kept) || inp.op === 'cull') assert.equal(rm[i], true, `${o.name} reads ${inp.name}`);
  }
  assert.ok(names.length >= 4, `re-masked: ${names}`);
  assert.deepEqual(remaskedLinears(full.m.plan).filter(Boolean), [], 'every site whole: nothing is re-masked');
  const x = image(7);
  const r = await simulate({ model: part.m, image: x, relu: 'ot' });
  const remaskEntries = r.client.client.entries.filter((e) => e.kind === 'remask');
  assert.equal(remaskEntries.length, names.length);
  // the re-masking frames: one per re-masked layer, the size of its input
  const sizes = p.ops.flatMap((_, i) => (rm[i] ? [8 * reads(i).size] : []));
  const frames = r.server.received(['offline'], 'client').map((f) => f.bytes);
  const found = sizes.map((n) => frames.filter((f) => f.length === n));
  found.forEach((fs, k) => assert.ok(fs.length >= 1, `a ${sizes[k]}-byte re-masking frame`));
  const diffs = [...new Set(found.flat())];
  assert.ok(chiSquareUniform(byteHistogram(diffs)) < CHI2_255_BOUND, 'the differences look uniform');
  // the whole view: no word of the client's shares nor of a plain value
  const ref = referenceForward(part.m, quantize(x, p.fixed.f));
  const secrets = secretWords(...r.clientValues.values(), ...ref.values);
  assert.deepEqual(
    leakedWords(
      r.server.received().map((f) => f.bytes),
      secrets,
    ).slice(0, 5),
    [],
  );
  // and the result is the reference's within the culled sites' tolerance
  const sec = r64ToBig(r.client.out),
    rf = r64ToBig(ref.out);
  const d = Math.max(...Array.from(sec, (v, k) => Math.abs(Number(v - rf[k]!))));
  assert.ok(d < 2 ** (p.ops[p.ops.length - 1]!.scale - 8), `max diff ${d} ULPs`);
});
