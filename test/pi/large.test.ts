// Networks at ImageNet and TinyImageNet scale under PI. ResNet-50 at 224x224 (random weights, 1000 classes): its plan
// passes the client's checks with the default bounds, its plan message stays far inside its frame limit, the frame
// limits and deadlines derived from it are finite, cover its messages and grow with it, and a tampered plan of that
// size is refused. TinyImageNet presets (ResNet-18 at 64x64) compile to plans, and a narrow one runs a streamed session.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { countRelus } from '../../src/models/index.js';
import { getPreset } from '../../src/models/presets.js';
import { specFromOptions } from '../../src/models/options.js';
import { specFor } from '../../src/models/spec.js';
import { serverModelRandom } from '../../src/pi/node/load.js';
import { referenceForward } from '../../src/pi/node/compile.js';
import { checkPlan, DEFAULT_PLAN_BOUNDS, planComparisons, type PublicPlan } from '../../src/pi/plan.js';
import {
  DEFAULT_DEADLINES,
  PLAN_MAX_BYTES,
  reluSites,
  runClient,
  serveClient,
  sessionLimits,
} from '../../src/pi/protocol.js';
import { CHUNKS_IN_FLIGHT } from '../../src/pi/relu/ot/protocol.js';
import { planDeadlines, planSchedule } from '../../src/pi/schedule.js';
import { makePreprocessor } from '../../src/pi/linear/index.js';
import { HE_PARAMS } from '../../src/pi/he/params.js';
import { makeReluProtocol } from '../../src/pi/relu/registry.js';
import { channelPair, DEFAULT_LIMITS } from '../../src/pi/transport/channel.js';
import { ERROR_FRAME_MAX, PiError } from '../../src/pi/wire.js';
import { quantize, r64ToBig } from '../../src/pi/fixed.js';

const spec50 = specFor('resnet50-imagenet', { inputSize: 224, numClasses: 1000 });
const r50 = serverModelRandom(spec50, 0);
after(() => r50.dispose());
const plan = r50.plan;
const message = (p: unknown, schedule: number[]) => JSON.stringify({ plan: p, batch: 16384, schedule });

const refused = (code: string) => (e: unknown) => e instanceof PiError && e.code === code;

/** A fake server: reads the hello, sends `frame` as the plan message, returns what the client did. */
async function clientGets(frame: string | Uint8Array, bounds = DEFAULT_PLAN_BOUNDS) {
  const [s, c] = channelPair();
  const client = runClient(c, new Float32Array(plan.ops[0]!.size), { planBounds: bounds });
  await s.recv();
  if (typeof frame === 'string') s.send(new TextEncoder().encode(frame));
  else s.send(frame);
  try {
    await client;
    return null;
  } catch (e) {
    return e;
  } finally {
    s.close();
  }
}

test('resnet50-imagenet at 224x224: the plan passes the checks with the default bounds and its message is small', () => {
  const c = countRelus(spec50);
  assert.equal(plan.relus, c.total);
  assert.equal(plan.relus, 9_608_704);
  assert.equal(planComparisons(plan), c.maxPoolComparisons);
  assert.ok(plan.ops.some((o) => o.op === 'maxpool'));
  assert.ok(plan.macs > 4e9, `${plan.macs} MACs`);
  for (const mode of ['all', 'layer'] as const) {
    const m = message(plan, planSchedule(plan, { mode }, 'ot'));
    // about 20 KB: far inside the limit (a hundredth of it)
    assert.ok(m.length < PLAN_MAX_BYTES / 100, `${mode}: plan message ${m.length} bytes, limit ${PLAN_MAX_BYTES}`);
    const back = checkPlan((JSON.parse(m) as { plan: unknown }).plan, 'peer');
    assert.equal(back.digest, plan.digest);
  }
  // the HE flooding covers every coefficient the session decrypts (one per linear output; 2^22 did not)
  const decrypted = plan.ops.reduce((a, o) => a + (o.op === 'conv' || o.op === 'fc' ? o.size : 0), 0);
  assert.ok(decrypted > 2 ** 22 && decrypted <= 2 ** HE_PARAMS.sessionCoeffBits, `${decrypted} coefficients`);
  // the bounds before this network (2^23 kept ReLUs) refused it
  assert.throws(() =>
    checkPlan(JSON.parse(JSON.stringify(plan)), 'peer', { ...DEFAULT_PLAN_BOUNDS, maxRelus: 1 << 23 }),
  );
});

test('resnet50-imagenet: frame limits cover its messages, within the channel limits; streamed online covers offline', () => {
  const prep = makePreprocessor('he');
  for (const relu of ['ot', 'gc']) {
    const all = sessionLimits(plan, 16384, makeReluProtocol(relu), prep),
      streamed = sessionLimits(plan, 16384, makeReluProtocol(relu), prep, true);
    for (const [name, lim] of Object.entries({ all, streamed }))
      for (const [phase, l] of Object.entries(lim)) {
        const w = `${relu} ${name} ${phase}`;
        for (const v of [l.toServer, l.toClient]) {
          assert.ok(Number.isSafeInteger(v) && v >= ERROR_FRAME_MAX, `${w}: frame limit ${v}`);
          assert.ok(
            v <= DEFAULT_LIMITS.maxFrameBytes,
            `${w}: frame limit ${v} above the channel's ${DEFAULT_LIMITS.maxFrameBytes}`,
          );
        }
        assert.ok(l.bufferToServer >= 2 * l.toServer && l.bufferToClient >= 2 * l.toClient, w);
        assert.ok(
          l.bufferToServer <= DEFAULT_LIMITS.maxBufferedBytes && l.bufferToClient <= DEFAULT_LIMITS.maxBufferedBytes,
          w,
        );
      }
    // the session's own online messages: the input share (8 bytes x 150,528), the logits
    assert.ok(all.online.toServer >= 8 * 3 * 224 * 224);
    assert.ok(all.online.toClient >= 8 * 1000);
    // a streamed session's online phase carries later layers' offline messages; all-mode's online does not need to
    assert.ok(streamed.online.toServer >= all.offline.toServer && streamed.online.toClient >= all.offline.toClient);
    assert.deepEqual(streamed.offline, all.offline);
  }
});

test("resnet50-imagenet: the OT ReLU's buffer limits are bounded by its chunks, not by the 802,816-ReLU stem site", () => {
  const prep = makePreprocessor('he'),
    sites = reluSites(plan),
    largest = Math.max(...sites.map((s) => s.size));
  assert.equal(largest, 802_816);
  for (const relu of ['ot', 'silent', 'ot-online']) {
    const p = makeReluProtocol(relu);
    const flights = (relu === 'ot-online' ? [] : [16384, 4096]).map((batch) => {
      // (ot-online's matrices go with its online messages, which are a site's: checked in the buffers below)
      const corr = p.maxMessageBytes(sites, { batch }).offline;
      // a chunk's OT matrices: under 768 B per ReLU each way (a 63-bit comparison's 16 KK13 leaves, IKNP's triples, mux)
      for (const f of [corr.flightToServer!, corr.flightToClient!])
        assert.ok(f <= CHUNKS_IN_FLIGHT * batch * 768, `${relu} batch ${batch}: flight ${f}`);
      return corr.flightToServer!;
    });
    // a quarter of the batch, a quarter of the flight (silent's are a group's reserve rounds of 199 KB)
    if (relu === 'ot') assert.ok(Math.abs(flights[1]! / flights[0]! - 1 / 4) < 0.05, `${relu}: flights ${flights}`);
    // the session's buffers: tens of MB (they were 688 MB to the server, 229 MB to the client with a site's matrices
    // in one flight); the largest now comes from HE's uploads (a flight of two) and its responses
    for (const streamed of [false, true]) {
      const lim = sessionLimits(plan, 16384, p, prep, streamed);
      for (const [phase, l] of Object.entries(lim))
        assert.ok(
          l.bufferToServer < 100e6 && l.bufferToClient < 100e6,
          `${relu} ${phase}: buffers ${l.bufferToServer} / ${l.bufferToClient}`,
        );
    }
  }
});

test('resnet50-imagenet: deadlines grow with the plan (given ones are kept); a small plan keeps the defaults', () => {
  const d = planDeadlines(plan, DEFAULT_DEADLINES, {}, false);
  // 9.6M ReLUs, 1.6M max-pool comparisons and 4.1 G MACs: 3.6 times the work the defaults are for
  assert.ok(d.offlineMs > 3 * DEFAULT_DEADLINES.offlineMs && d.onlineMs > 3 * DEFAULT_DEADLINES.onlineMs);
  assert.ok(d.idleMs > DEFAULT_DEADLINES.idleMs && d.onlineIdleMs > DEFAULT_DEADLINES.onlineIdleMs);
  const given = planDeadlines(plan, DEFAULT_DEADLINES, { offlineMs: 1234 }, false);
  assert.equal(given.offlineMs, 1234);
  const s = planDeadlines(plan, DEFAULT_DEADLINES, {}, true);
  assert.equal(s.onlineMs, d.onlineMs + d.offlineMs);
  // the smallest TinyImageNet preset at alpha 1/8 is below the reference: the defaults as they are
  const small = serverModelRandom(specFromOptions({ preset: 'TINY_49K', alpha: 0.125 }).spec, 0);
  try {
    const ds = planDeadlines(small.plan, DEFAULT_DEADLINES, {}, false);
    assert.deepEqual(ds, {
      offlineMs: DEFAULT_DEADLINES.offlineMs,
      onlineMs: DEFAULT_DEADLINES.onlineMs,
      idleMs: DEFAULT_DEADLINES.idleMs,
      onlineIdleMs: DEFAULT_DEADLINES.onlineIdleMs,
    });
  } finally {
    small.dispose();
  }
});

test('resnet50-imagenet: a tampered plan of that size is refused by the client (MALFORMED), an oversized message (LIMIT)', async () => {
  const tamper = (f: (p: PublicPlan) => void) => {
    const p = JSON.parse(JSON.stringify(plan)) as PublicPlan;
    f(p);
    return p;
  };
  const pool = plan.ops.findIndex((o) => o.op === 'maxpool');
  const bads: [string, PublicPlan][] = [
    // the max pool's output one row taller than its geometry gives
    [
      'maxpool shape',
      tamper((p) => {
        const o = p.ops[pool]!;
        o.shape = [o.shape[0]!, o.shape[1]! + 1, o.shape[2]!];
      }),
    ],
    // one ReLU more than the plan says
    [
      'relu count',
      tamper((p) => {
        p.relus += 1;
      }),
    ],
    // a late op reading a value from the future
    [
      'forward reference',
      tamper((p) => {
        const o = p.ops[p.ops.length - 1]!;
        if ('input' in o) o.input = p.ops.length;
      }),
    ],
  ];
  for (const [what, p] of bads) {
    assert.throws(() => checkPlan(JSON.parse(JSON.stringify(p)), 'peer'), refused('MALFORMED'), what);
    const e = await clientGets(message(p, [0]));
    assert.ok(refused('MALFORMED')(e), `${what}: ${String(e)}`);
  }
  // a client with bounds below the network refuses the genuine plan
  const e = await clientGets(message(plan, [0]), { ...DEFAULT_PLAN_BOUNDS, maxRelus: 1 << 23 });
  assert.ok(refused('MALFORMED')(e), String(e));
  // a plan message past the limit: refused at its length prefix
  const big = await clientGets(new Uint8Array(PLAN_MAX_BYTES + 1));
  assert.ok(refused('LIMIT')(big), String(big));
});

test('TinyImageNet presets (resnet18 at 64x64): TINY_393K and TINY_49K compile to checked plans with their ReLU counts', () => {
  for (const name of ['TINY_393K', 'TINY_49K']) {
    const { spec } = specFromOptions({ preset: name });
    assert.equal(spec.inputSize, 64);
    const m = serverModelRandom(spec, 0);
    try {
      assert.equal(m.plan.relus, getPreset(name).relus, name);
      assert.equal(m.plan.ops[0]!.size, 3 * 64 * 64);
      checkPlan(JSON.parse(JSON.stringify(m.plan)), 'peer');
      const lim = sessionLimits(m.plan, 16384, makeReluProtocol('ot'), makePreprocessor('he'), true);
      assert.ok(lim.online.toServer >= 8 * 3 * 64 * 64);
    } finally {
      m.dispose();
    }
  }
});

test('TINY_49K at alpha 1/8, 64x64 input: a streamed he + ot session gives the reference top-1', async () => {
  const m = serverModelRandom(specFromOptions({ preset: 'TINY_49K', alpha: 0.125 }).spec, 3);
  try {
    const x = Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37) * 1.5);
    const ref = referenceForward(m, quantize(x, m.plan.fixed.f));
    const [s, c] = channelPair();
    const [, r] = await Promise.all([
      serveClient(s, m, { offline: { mode: 'layer' } }),
      runClient(c, x, { offline: { mode: 'layer' } }),
    ]);
    const top = (v: ArrayLike<number>) => Array.from(v).reduce((b, y, i, a) => (y > a[b]! ? i : b), 0);
    assert.equal(top(r.logits), top(ref.logits));
    const d = r64ToBig(r.out).reduce((mx, v, i) => {
      const e = v - r64ToBig(ref.out)[i]!;
      return Math.max(mx, Number(e < 0n ? -e : e));
    }, 0);
    // random weights through culled (linear) stages: logits of about +-90, the truncation errors grown with them; the
    // same in every mode (about 8e5 ULPs of 2^-28 here, all or layer)
    const big = Math.max(...Array.from(ref.logits, Math.abs));
    assert.ok(d / 2 ** r.scale < 1e-4 * big, `${d} ULPs of 2^-${r.scale}, logits up to ${big.toFixed(1)}`);
    assert.equal(r.plan.relus, Math.round(getPreset('TINY_49K').relus / 8));
  } finally {
    m.dispose();
  }
});
