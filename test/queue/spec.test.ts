import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRunDir, ensureRunMarker, isRetryable, jobIdFor, MARKER, progressText } from '../../src/queue/spec.js';

test('the run marker keeps its token across reruns; job ids are readable, unique per run and free of ":"', () => {
  const run = mkdtempSync(join(tmpdir(), 'dr-marker-'));
  const t = ensureRunMarker(run, 'redis://h/q');
  assert.match(t, /^[0-9a-f]{32}$/);
  assert.equal(ensureRunMarker(run, 'redis://h/q'), t);
  const other = ensureRunMarker(mkdtempSync(join(tmpdir(), 'dr-marker-')), 'redis://h/q');
  assert.notEqual(other, t);
  const id = jobIdFor('/runs/c100:x', t, 'criticality/stage1');
  assert.equal(id, `c100_x-${t.slice(0, 8)}/criticality/stage1`);
  writeFileSync(join(run, MARKER), '{"token": 3}');
  assert.throws(() => ensureRunMarker(run, 'redis://h/q'), /queue-run\.json: field 'token' is missing or malformed/);
});

test('a worker checks it sees the very run directory the job came from, and can write there', () => {
  const run = mkdtempSync(join(tmpdir(), 'dr-rundir-'));
  assert.throws(
    () => checkRunDir(run, 'a'.repeat(32), 'w1'),
    new RegExp(`worker w1 cannot see the run directory ${run} \\(.*ENOENT\\)`),
  );
  const token = ensureRunMarker(run, 'redis://h/q');
  checkRunDir(run, token, 'w1');
  assert.throws(() => checkRunDir(run, 'b'.repeat(32), 'w1'), /is not the run directory the job was submitted from/);
  // Writing fails (here: the probe's name is taken by a folder; on a cluster: a read-only mount).
  mkdirSync(join(run, `.write-probe-${hostname()}-${process.pid}`));
  assert.throws(
    () => checkRunDir(run, token, 'w1'),
    new RegExp(`worker w1 cannot write to the run directory ${run} \\(EISDIR\\)`),
  );
});

test('infrastructure errors are retried, deterministic ones are not', () => {
  const io = Object.assign(new Error('write failed'), { code: 'ESTALE' });
  assert.ok(isRetryable(io));
  assert.ok(isRetryable(Object.assign(new Error('no space'), { code: 'ENOSPC' })));
  assert.ok(isRetryable(new Error('CUDA out of memory. Tried to allocate 2.00 GiB')));
  assert.ok(
    !isRetryable(
      Object.assign(new Error('/d/train-images-idx3-ubyte(.gz): IDX images file not found'), { code: 'ENOENT' }),
    ),
  );
  assert.ok(!isRetryable(new Error("unknown dataset 'cifar11'")));
  assert.ok(!isRetryable(new Error('training diverged at epoch 3, step 10: loss is NaN')));
});

test('progress reads as epoch, share and ETA', () => {
  assert.equal(
    progressText({ worker: 'h/1', attempt: 1, epoch: 2, epochs: 5, fraction: 0.314, eta_s: 250 }),
    'epoch 2/5, 31%, ETA 4m10s',
  );
  assert.equal(
    progressText({ worker: 'h/1', attempt: 1, epoch: 1, epochs: 5, fraction: 0, eta_s: null }),
    'epoch 1/5, 0%, ETA ?',
  );
  assert.equal(
    progressText({ worker: 'h/1', attempt: 1, epoch: 1, epochs: 90, fraction: 0, eta_s: 7300 }),
    'epoch 1/90, 0%, ETA 2h01m',
  );
  assert.equal(progressText(null), 'starting');
});
