import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildNetwork, cullStages, fullMask, removeSites, specFor } from '../../../../src/models/index.js';
import { referenceForward } from '../../../../src/pi/node/compile.js';
import { quantize } from '../../../../src/pi/fixed.js';
import { saveModelDir } from '../../../../src/train/modeldir.js';
import { datasetImage, serverModelFromDir } from '../../../../src/pi/node/load.js';

const root = fileURLToPath(new URL('../../../../../', import.meta.url));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
});

function run(
  args: string[],
  timeoutMs: number,
): { child: ChildProcess; done: Promise<{ code: number | null; out: string; err: string }> } {
  const child = spawn(process.execPath, [join(root, 'dist/src/cli/main.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DEEPREDUCE_THREADS: '1' },
  });
  children.push(child);
  let out = '',
    err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d;
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<{ code: number | null; out: string; err: string }>((res) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, out, err });
    }),
  );
  return { child, done };
}

test('two processes only, over TLS: `pi keygen`, `pi serve --model DIR --port 0` and `pi query --server-cert` classify with no dealer', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'pi-he-cli-'));
  try {
    const dir = join(tmp, 'model');
    // stage 1 culled: fewer garbled ReLUs (the HE layers are all there)
    const spec = specFor('resnet20', { alpha: 0.25, inChannels: 1, inputSize: 28, numClasses: 10 });
    const n = buildNetwork({ ...spec, mask: cullStages(removeSites(fullMask(spec), ['stem.relu']), [1]) }).eval();
    saveModelDir(dir, n, { dataset: 'fashion-mnist', mean: [0.286], std: [0.353] });
    n.dispose();
    const keys = join(tmp, 'keys');
    const k = await run(['pi', 'keygen', '--out', keys], 30000).done;
    assert.equal(k.code, 0, k.err);
    // no --preprocess and no --dealer: he is the default, and serve needs no dealer for it
    const server = run(
      ['pi', 'serve', '--model', dir, '--port', '0', '--cert', join(keys, 'cert.pem'), '--key', join(keys, 'key.pem')],
      120000,
    );
    let port = 0,
      stderr = '';
    server.child.stderr!.on('data', (d: Buffer) => {
      stderr += d;
    });
    for (let i = 0; i < 600 && !port; i++) {
      const m = /serving .* on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) port = Number(m[1]);
      else await new Promise((r) => setTimeout(r, 50));
      if (server.child.exitCode !== null) break;
    }
    assert.ok(port > 0, `server did not start: ${stderr}`);
    assert.match(stderr, /over TLS; preprocessing he; ReLU protocol gc or ot or ot-online or silent; link: no shaping/);
    const q = await run(
      [
        'pi',
        'query',
        '--connect',
        `127.0.0.1:${port}`,
        '--server-cert',
        join(keys, 'cert.pem'),
        '--dataset',
        'fashion-mnist',
        '--index',
        '3',
        '--json',
      ],
      120000,
    ).done;
    assert.equal(q.code, 0, q.err);
    const res = JSON.parse(q.out) as {
      predicted: number;
      label: number;
      logits: number[];
      linear: { cToS: number; sToC: number; serverMs: number; clientMs: number };
      relu: string;
      preprocess: string;
      transport: string;
      link: string;
    };
    // the defaults: he preprocessing, OT ReLUs, TLS, no link shaping
    assert.deepEqual([res.preprocess, res.relu, res.transport, res.link], ['he', 'ot', 'tls', 'no shaping']);
    // the logits are the fixed-point reference's, within the local truncation error of the culled sites
    const m = serverModelFromDir(dir);
    try {
      const { x, label } = datasetImage(m.plan, 'fashion-mnist', 3);
      const ref = referenceForward(m, quantize(x, m.plan.fixed.f));
      res.logits.forEach((v, i) =>
        assert.ok(Math.abs(v - ref.logits[i]!) < 0.02, `logit ${i}: ${v} vs reference ${ref.logits[i]}`),
      );
      assert.equal(res.label, label);
    } finally {
      m.dispose();
    }
    assert.ok(res.linear.cToS > 0 && res.linear.sToC > 0 && res.linear.clientMs > 0, JSON.stringify(res.linear));
    // the server sends no timings unless the client asks (--timings) and the server allows it (--report-timings)
    assert.equal(res.linear.serverMs, 0, JSON.stringify(res.linear));
    // and the dealer's flags are refused without --preprocess dealer
    const stray = await run(
      [
        'pi',
        'query',
        '--connect',
        `127.0.0.1:${port}`,
        '--server-cert',
        join(keys, 'cert.pem'),
        '--dealer',
        '127.0.0.1:1',
        '--dataset',
        'fashion-mnist',
      ],
      30000,
    ).done;
    assert.notEqual(stray.code, 0);
    assert.match(
      stray.err,
      /--dealer, --dealer-cert and --dealer-pin are only for --preprocess dealer \(this client uses 'he'\)/,
    );
    server.child.kill('SIGTERM');
    const s = await server.done;
    assert.match(s.err, /serving/);
    assert.doesNotMatch(s.err, /session failed/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
