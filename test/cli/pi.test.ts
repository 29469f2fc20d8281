// deepreduce pi from the command line: keygen, then a dealer, a server and a query over TLS (random weights) with
// --preprocess dealer (the three-party option; the default, he, is tested in test/pi/linear/he/cli.test.ts); the
// query refuses an unverified or wrongly pinned server; --insecure is announced loudly.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
const dir = mkdtempSync(join(tmpdir(), 'dr-cli-pi-'));
const model = ['--arch', 'resnet20', '--alpha', '0.25', '--input', '8', '--classes', '10'];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill();
});

/** Starts a long-running party and resolves with its port once it says where it listens. */
function start(args: string[]): Promise<{ port: number; err: () => string }> {
  const c = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  let err = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no port within 30 s: ${err}`)), 30_000);
    c.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = / on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve({ port: Number(m[1]), err: () => err });
      }
    });
    c.once('exit', (code) => reject(new Error(`exited with ${code}: ${err}`)));
  });
}

test('keygen, dealer, serve and query over TLS; refusals of unverified servers; --insecure warns', async () => {
  for (const who of ['server', 'dealer']) {
    const k = run('pi', 'keygen', '--out', join(dir, who), '--host', 'pi.test');
    assert.equal(k.status, 0, k.stderr);
    assert.match(k.stdout, /fingerprint: [0-9a-f]{64}/);
    assert.equal(statSync(join(dir, who, 'key.pem')).mode & 0o777, 0o600);
  }
  const fp = (who: string) => readFileSync(join(dir, who, 'cert.sha256'), 'utf8').trim();
  const input = join(dir, 'x.json');
  writeFileSync(input, JSON.stringify(Array.from({ length: 192 }, (_, i) => Math.sin(i))));

  const dealer = await start([
    'pi',
    'dealer',
    ...model,
    '--port',
    '0',
    '--cert',
    join(dir, 'dealer', 'cert.pem'),
    '--key',
    join(dir, 'dealer', 'key.pem'),
    '--server-cert',
    join(dir, 'server', 'cert.pem'),
  ]);
  const dealerAt = `127.0.0.1:${dealer.port}`;
  const server = await start([
    'pi',
    'serve',
    ...model,
    '--port',
    '0',
    '--cert',
    join(dir, 'server', 'cert.pem'),
    '--key',
    join(dir, 'server', 'key.pem'),
    '--preprocess',
    'dealer',
    '--dealer',
    dealerAt,
    '--dealer-pin',
    fp('dealer'),
  ]);
  assert.match(server.err(), /over TLS/);
  const at = `127.0.0.1:${server.port}`;

  const q = run(
    'pi',
    'query',
    '--connect',
    at,
    '--pin',
    fp('server'),
    '--preprocess',
    'dealer',
    '--dealer',
    dealerAt,
    '--dealer-cert',
    join(dir, 'dealer', 'cert.pem'),
    '--input',
    input,
    '--json',
  );
  assert.equal(q.status, 0, q.stderr);
  const r = JSON.parse(q.stdout) as { predicted: number; logits: number[] };
  assert.equal(r.logits.length, 10);
  assert.equal(r.predicted, r.logits.indexOf(Math.max(...r.logits)));

  const noTrust = run(
    'pi',
    'query',
    '--connect',
    at,
    '--preprocess',
    'dealer',
    '--dealer',
    dealerAt,
    '--dealer-pin',
    fp('dealer'),
    '--input',
    input,
  );
  assert.notEqual(noTrust.status, 0);
  assert.match(
    noTrust.stderr,
    /refusing to connect without a way to verify the server: give --server-cert FILE or --pin SHA256/,
  );
  const wrongPin = run(
    'pi',
    'query',
    '--connect',
    at,
    '--pin',
    fp('dealer'),
    '--preprocess',
    'dealer',
    '--dealer',
    dealerAt,
    '--dealer-pin',
    fp('dealer'),
    '--input',
    input,
  );
  assert.notEqual(wrongPin.status, 0);
  assert.match(
    wrongPin.stderr,
    new RegExp(`the server's certificate has fingerprint ${fp('server')}, not the pinned ${fp('dealer')}`),
  );

  const insecure = await start([
    'pi',
    'serve',
    ...model,
    '--port',
    '0',
    '--insecure',
    '--preprocess',
    'dealer',
    '--dealer',
    dealerAt,
    '--dealer-pin',
    fp('dealer'),
    '--cert',
    join(dir, 'server', 'cert.pem'),
    '--key',
    join(dir, 'server', 'key.pem'),
  ]);
  assert.match(insecure.err(), /WARNING: --insecure: plain TCP without TLS/);
  assert.match(insecure.err(), /over INSECURE plain TCP/);
  const qi = run(
    'pi',
    'query',
    '--connect',
    `127.0.0.1:${insecure.port}`,
    '--insecure',
    '--preprocess',
    'dealer',
    '--dealer',
    dealerAt,
    '--dealer-pin',
    fp('dealer'),
    '--input',
    input,
    '--json',
  );
  assert.equal(qi.status, 0, qi.stderr);
  assert.match(qi.stderr, /WARNING: --insecure/);
  // the same image: the same logits up to the OT ReLU's local-truncation error (fresh shares per session)
  const li = (JSON.parse(qi.stdout) as { logits: number[] }).logits;
  li.forEach((v, i) => assert.ok(Math.abs(v - r.logits[i]!) < 0.02, `logit ${i}: ${v} vs ${r.logits[i]}`));
});

test('serve, query and bench take --relu and --link; a server pinned to a ReLU protocol refuses another', async () => {
  const keys = join(dir, 'relu-keys');
  assert.equal(run('pi', 'keygen', '--out', keys).status, 0);
  const pin = readFileSync(join(keys, 'cert.sha256'), 'utf8').trim();
  const input = join(dir, 'y.json');
  writeFileSync(input, JSON.stringify(Array.from({ length: 192 }, (_, i) => Math.cos(i))));
  const server = await start([
    'pi',
    'serve',
    ...model,
    '--port',
    '0',
    '--cert',
    join(keys, 'cert.pem'),
    '--key',
    join(keys, 'key.pem'),
    '--relu',
    'gc',
    '--link',
    'lan',
  ]);
  assert.match(server.err(), /over TLS; preprocessing he; ReLU protocol gc; link: lan: 3 Gbit\/s, 0.3 ms RTT/);
  const at = `127.0.0.1:${server.port}`;
  const q = run(
    'pi',
    'query',
    '--connect',
    at,
    '--pin',
    pin,
    '--relu',
    'gc',
    '--link',
    '1gbit,1ms',
    '--input',
    input,
    '--json',
  );
  assert.equal(q.status, 0, q.stderr);
  const r = JSON.parse(q.stdout) as {
    relu: string;
    link: string;
    preprocess: string;
    transport: string;
    logits: number[];
  };
  assert.deepEqual([r.relu, r.link, r.preprocess, r.transport], ['gc', '1gbit,1ms: 1 Gbit/s, 1 ms RTT', 'he', 'tls']);
  // the client's default, ot, is refused by this server
  const other = run('pi', 'query', '--connect', at, '--pin', pin, '--input', input);
  assert.notEqual(other.status, 0);
  assert.match(other.stderr, /the server reported PROTOCOL/);
  // bench: one report per protocol and link, both parties in this process over TLS
  const b = run('pi', 'bench', ...model, '--relu', 'gc,ot', '--link', 'lan', '--json');
  assert.equal(b.status, 0, b.stderr);
  const reps = JSON.parse(b.stdout) as {
    relu: string;
    link: string;
    preprocess: string;
    transport: string;
    logits: number[];
  }[];
  assert.deepEqual(
    reps.map((x) => `${x.relu} ${x.link.split(':')[0]} ${x.preprocess} ${x.transport}`),
    ['gc lan he tls', 'ot lan he tls'],
  );
  // the same image under gc and ot: the same class, logits within OT's local-truncation error
  const d = Math.max(...reps[0]!.logits.map((v, i) => Math.abs(v - reps[1]!.logits[i]!)));
  assert.ok(d < 0.02, `gc vs ot: ${d}`);
});
