// `pi serve` operated from the command line: --metrics-port serves Prometheus metrics and /healthz, --json prints one
// line per session, --audit-log appends the same line, and SIGTERM drains and exits 0 within --drain-timeout.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dr-cli-serve-ops-'));
const model = ['--arch', 'resnet20', '--alpha', '0.25', '--input', '8', '--classes', '10'];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

const fetchText = (port: number, path: string): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });

function runAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  let stdout = '',
    stderr = '';
  c.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  c.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => c.once('exit', (code) => resolve({ code, stdout, stderr })));
}

test('serve --metrics-port --json --audit-log: a query is logged and counted; SIGTERM drains and exits 0', async () => {
  const audit = join(dir, 'audit.jsonl'),
    input = join(dir, 'x.json');
  writeFileSync(input, JSON.stringify(Array.from({ length: 192 }, (_, i) => Math.sin(i))));
  const c = spawn(
    process.execPath,
    [
      cli,
      'pi',
      'serve',
      ...model,
      '--port',
      '0',
      '--insecure',
      '--metrics-port',
      '0',
      '--json',
      '--audit-log',
      audit,
      '--drain-timeout',
      '5',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(c);
  let err = '',
    out = '';
  c.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const ports = await new Promise<{ pi: number; metrics: number }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ports within 60 s: ${err}`)), 60_000);
    c.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const a = / on 127\.0\.0\.1:(\d+)/.exec(err),
        b = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(err);
      if (a && b) {
        clearTimeout(t);
        resolve({ pi: Number(a[1]), metrics: Number(b[1]) });
      }
    });
    c.once('exit', (code) => reject(new Error(`exited with ${code}: ${err}`)));
  });
  assert.equal((await fetchText(ports.metrics, '/healthz')).status, 200);
  const q = await runAsync([
    'pi',
    'query',
    '--connect',
    `127.0.0.1:${ports.pi}`,
    '--insecure',
    '--input',
    input,
    '--json',
  ]);
  assert.equal(q.code, 0, q.stderr);
  for (let i = 0; i < 200 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 10));
  const line = JSON.parse(out.trim().split('\n')[0]!) as {
    outcome: string;
    identity: string;
    phases: { online: { ms: number } };
    link: string;
  };
  assert.equal(line.outcome, 'ok');
  assert.equal(line.identity, 'ip:127.0.0.1');
  assert.ok(line.phases.online.ms > 0);
  assert.deepEqual(JSON.parse(readFileSync(audit, 'utf8').trim()), JSON.parse(out.trim()));
  const m = await fetchText(ports.metrics, '/metrics');
  assert.match(m.body, /^pi_sessions_total\{outcome="ok"\} 1$/m);
  const t0 = Date.now();
  const exited = new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
  c.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.ok(Date.now() - t0 < 5000 + 3000);
  assert.match(err, /SIGTERM: draining 0 live session\(s\)/);
});
