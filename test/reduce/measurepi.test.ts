import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'parse5';
import { manualSeed, setNumThreads } from '../../src/engine/index.js';
import { buildNetwork, countRelus, cullStages, fullMask, specFor, type NetSpec } from '../../src/models/index.js';
import { saveModelDir } from '../../src/train/modeldir.js';
import { DEFAULT_PI_OPTIONS, measurePi, measureRunPi, piArgs } from '../../src/reduce/measurepi.js';
import type { ReduceResults } from '../../src/reduce/pipeline.js';
import { renderReport } from '../../src/reduce/report.js';
import { measuredPiLines } from '../../src/reduce/report-pi.js';
import { writeBands } from '../train/bands.js';

setNumThreads(1);
const data = writeBands(mkdtempSync(join(tmpdir(), 'dr-mpi-bands-')));

test('protocol options pass straight through to each pi process', () => {
  // Without TLS files and without identities: plain TCP, said explicitly.
  assert.deepEqual(piArgs('serve', { preprocess: 'dealer' }), ['--preprocess', 'dealer', '--insecure']);
  // Generated identities: the server's for the client to verify, the dealer's for both to verify, and the dealer
  // admits as server only the holder of the server's certificate.
  const ids = { server: { cert: 's.pem', key: 'sk.pem' }, dealer: { cert: 'd.pem', key: 'dk.pem' } };
  assert.deepEqual(piArgs('dealer', { preprocess: 'dealer' }, ids), [
    '--cert',
    'd.pem',
    '--key',
    'dk.pem',
    '--server-cert',
    's.pem',
  ]);
  assert.deepEqual(piArgs('serve', { preprocess: 'dealer' }, ids), [
    '--preprocess',
    'dealer',
    '--cert',
    's.pem',
    '--key',
    'sk.pem',
    '--dealer-cert',
    'd.pem',
  ]);
  assert.deepEqual(piArgs('query', { preprocess: 'dealer' }, ids), [
    '--preprocess',
    'dealer',
    '--server-cert',
    's.pem',
    '--dealer-cert',
    'd.pem',
  ]);
  const o = {
    preprocess: 'he',
    relu: 'ot',
    link: 'wan',
    tls: { cert: 'c.pem', key: 'k.pem' },
    extra: { query: ['--x', '1'] },
  };
  assert.deepEqual(piArgs('serve', o), [
    '--preprocess',
    'he',
    '--relu',
    'ot',
    '--link',
    'wan',
    '--cert',
    'c.pem',
    '--key',
    'k.pem',
  ]);
  assert.deepEqual(piArgs('query', o), [
    '--preprocess',
    'he',
    '--relu',
    'ot',
    '--link',
    'wan',
    '--server-cert',
    'c.pem',
    '--x',
    '1',
  ]);
  assert.deepEqual(piArgs('query', { preprocess: 'he', tls: 'insecure' }), ['--preprocess', 'he', '--insecure']);
});

/** A random-weights model directory for the 8x8 bands images. */
function modelDir(dir: string, spec: NetSpec, acc: number): string {
  manualSeed(3);
  const net = buildNetwork(spec);
  try {
    saveModelDir(
      dir,
      net,
      { dataset: 'mnist', mean: [0.4], std: [0.3] },
      { test_acc: acc, relus: countRelus(spec).total },
    );
  } finally {
    net.dispose();
  }
  return dir;
}

test('the teacher and the recommended model run under two-party PI in separate processes; the report shows them', async () => {
  const out = mkdtempSync(join(tmpdir(), 'dr-mpi-'));
  try {
    const spec = specFor('resnet20', { alpha: 0.25, numClasses: 10, inChannels: 1, inputSize: 8 });
    const small = { ...spec, mask: cullStages(fullMask(spec), [1, 2]) };
    const teacher = modelDir(join(out, 'teacher'), spec, 0.9);
    const cand = (id: string, s: NetSpec, acc: number) => ({
      id,
      description: id,
      relus: countRelus(s).total,
      acc,
      latency_s: 0.01,
      kd: true,
      dir: modelDir(join(out, id), s, acc),
    });
    const r = {
      config: { out, dataset: 'mnist', dataDir: data, kd: true, limitTest: 30 },
      costModel: { source: 'test' },
      baseline: { relus: countRelus(spec).total, macs: 0, acc: 0.9, latency_s: 0.05, dir: teacher },
      // 'tiny' is smaller but 2 points worse: outside a 1-point tolerance.
      candidates: [
        cand('small', small, 0.895),
        cand('tiny', { ...spec, mask: cullStages(fullMask(spec), [1, 2, 3]) }, 0.88),
      ],
    } as unknown as ReduceResults;
    const lines: string[] = [];
    const m = await measureRunPi(
      r,
      { images: 1, models: 'recommended', tolerance: 0.01, options: DEFAULT_PI_OPTIONS },
      (s) => lines.push(s),
    );
    assert.equal(m.recommended, 'small');
    assert.deepEqual(
      m.models.map((x) => x.id),
      ['teacher', 'small'],
    );
    for (const x of m.models) {
      const p = x.pi;
      assert.equal(p.n, 1);
      assert.equal(p.agree, 1, `${x.id}: secure top-1 equals the float model's`);
      assert.deepEqual(
        p.images.map((i) => i.index),
        [0],
      );
      assert.ok(
        p.offlineS.mean > 0 && p.onlineS.mean > 0 && p.onlineBytes.mean > 0 && p.bytes.mean > p.onlineBytes.mean,
        x.id,
      );
      assert.equal(p.options.preprocess, 'he');
      assert.equal(p.dealerBytes.mean, 0, 'two parties only: no dealer');
      assert.equal(p.relus, x.relus);
    }
    assert.ok(m.models[0]!.pi.bytes.mean > m.models[1]!.pi.bytes.mean, 'fewer ReLUs, fewer bytes');
    assert.ok(
      lines.some((l) => /pi small: 1\/1 images/.test(l)),
      lines.join('\n'),
    );
    assert.match(measuredPiLines(m).join('\n'), /recommended: small, .* fewer ReLUs; measured [\d.]+x faster in total/);
    // The default protocol, named in the summary and the report: two parties, he, the OT ReLU, the LAN profile, TLS.
    assert.deepEqual(
      [m.options.preprocess, m.options.relu, m.options.link, m.options.tls],
      ['he', 'ot', 'lan', undefined],
    );
    const protocol =
      "preprocessing he; ReLU protocol ot; link lan: 3 Gbit/s, 0.3 ms RTT; TLS 1.3, the server's certificate verified (fresh identities per measurement)";
    assert.ok(measuredPiLines(m)[0]!.includes(protocol), measuredPiLines(m)[0]);

    // Cached: measuring again reads <out>/pi/*.json and starts nothing.
    const cache = join(out, 'pi', 'small.json');
    const mtime = statSync(cache).mtimeMs;
    const again = await measureRunPi(
      r,
      { images: 1, models: 'recommended', tolerance: 0.01, options: DEFAULT_PI_OPTIONS },
      () => {},
    );
    assert.equal(statSync(cache).mtimeMs, mtime);
    assert.deepEqual(again.models[1]!.pi, m.models[1]!.pi);

    const html = renderReport({
      title: 't',
      config: {},
      baseline: r.baseline,
      candidates: r.candidates,
      summary: [],
      measuredPi: m,
    });
    parse(html, { onParseError: (e) => assert.fail(`HTML parse error ${e.code} at line ${e.startLine}`) });
    assert.match(html, /<h2 id="measured-pi">Measured private inference<\/h2>/);
    assert.equal((html.match(/class="estimate"/g) ?? []).length, 2, 'one estimate bar per model');
    assert.equal((html.match(/<g class="measured">/g) ?? []).length, 4, 'latency and bytes bars per model');
    assert.match(html, /<tr class="recommended"><td [^>]*>★ small<\/td>/);
    assert.ok(html.includes(`Protocol: ${protocol}.`), 'the report names the protocol and link');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('--pi-preprocess dealer: a dealer process (the third party, over TLS) preprocesses the linear layers', async () => {
  const out = mkdtempSync(join(tmpdir(), 'dr-mpi-dealer-'));
  try {
    const dir = modelDir(
      join(out, 'm'),
      specFor('resnet20', { alpha: 0.25, numClasses: 10, inChannels: 1, inputSize: 8 }),
      0.9,
    );
    const p = await measurePi(dir, 1, { preprocess: 'dealer' }, { dataset: 'mnist', dataDir: data });
    assert.equal(p.agree, 1);
    assert.ok(p.dealerBytes.mean > 0, 'the dealer preprocessed the linear layers');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a PI process that fails is reported with its own error', async () => {
  const out = mkdtempSync(join(tmpdir(), 'dr-mpi-bad-'));
  try {
    const dir = modelDir(
      join(out, 'm'),
      specFor('resnet20', { alpha: 0.25, numClasses: 10, inChannels: 1, inputSize: 8 }),
      0.9,
    );
    await assert.rejects(
      measurePi(
        dir,
        1,
        { ...DEFAULT_PI_OPTIONS, extra: { serve: ['--no-such-flag'] } },
        { dataset: 'mnist', dataDir: data },
      ),
      /pi serve .* exited \(exit 1\) before listening: .*unknown option '--no-such-flag'/s,
    );
    await assert.rejects(
      measurePi(join(out, 'nothing'), 1, DEFAULT_PI_OPTIONS, { dataset: 'mnist', dataDir: data }),
      /not a model directory/,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
