import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { manualSeed, tidy, tensor, labels, type Module } from '../../src/engine/index.js';
import { fit, evaluate, defaultTrainOptions, type TrainOptions } from '../../src/train/trainer.js';
import { kdLoss } from '../../src/train/kd.js';
import { tinyNet, syntheticData } from './synthetic.js';

const opts: TrainOptions = { ...defaultTrainOptions, epochs: 3, lr: 0.05, seed: 5, quiet: true, threads: 1 };
const tmp = () => mkdtempSync(join(tmpdir(), 'dr-train-'));
const weights = (m: Module) => m.namedParameters().map(([k, t]) => [k, Array.from(t.toFloat32())] as const);

test('training lowers the loss and writes metrics and checkpoints', async () => {
  manualSeed(5);
  const net = tinyNet();
  const out = tmp();
  const r = await fit(net, syntheticData(), { ...opts, epochs: 4 }, out);
  assert.equal(r.epochs.length, 4);
  assert.ok(
    r.epochs[3]!.train_loss < 0.7 * r.epochs[0]!.train_loss,
    `loss ${r.epochs[0]!.train_loss} -> ${r.epochs[3]!.train_loss}`,
  );
  assert.ok(r.final!.test_acc > 0.6, `test acc ${r.final!.test_acc}`);
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.epoch),
    [1, 2, 3, 4],
  );
  for (const k of ['train_loss', 'train_acc', 'test_acc', 'img_s']) assert.equal(typeof lines[0][k], 'number');
  const ptr = JSON.parse(readFileSync(join(out, 'checkpoint.json'), 'utf8'));
  assert.equal(ptr.epoch, 4);
  assert.ok(existsSync(join(out, ptr.dir, 'model.safetensors')));
  assert.ok(!existsSync(join(out, 'ckpt-3')), 'older checkpoints are removed');
});

test('resume after a crash mid-epoch reproduces the uninterrupted run exactly', async () => {
  manualSeed(5);
  const a = tinyNet();
  await fit(a, syntheticData(), opts, tmp());

  const out = tmp();
  manualSeed(5);
  const b = tinyNet();
  await assert.rejects(fit(b, syntheticData({ failAt: { epoch: 1, batch: 3 } }), opts, out), /simulated crash/);
  manualSeed(99); // a different fresh model: everything must come from the checkpoint
  const c = tinyNet();
  const r = await fit(c, syntheticData(), opts, out, { resume: true });
  assert.equal(r.resumedFrom, 1);
  assert.deepEqual(weights(c), weights(a));
});

test('a killed training process loses at most the epoch in progress and resumes exactly', async () => {
  const child = fileURLToPath(new URL('./train-child.js', import.meta.url));
  const ref = tmp();
  const run = (out: string, mode: string, delay: number) =>
    spawn(process.execPath, [child, out, '3', String(delay), mode], { stdio: 'inherit' });
  await new Promise<void>((res, rej) =>
    run(ref, 'fresh', 0).on('exit', (c) => (c === 0 ? res() : rej(new Error(`exit ${c}`)))),
  );

  const out = tmp();
  const p = run(out, 'fresh', 40);
  // Wait for the first epoch's checkpoint, then kill during the second epoch.
  while (!existsSync(join(out, 'checkpoint.json'))) await sleep(20);
  await sleep(120);
  p.kill('SIGKILL');
  await new Promise((res) => p.on('exit', res));
  const ptr = JSON.parse(readFileSync(join(out, 'checkpoint.json'), 'utf8'));
  assert.ok(ptr.epoch >= 1 && ptr.epoch < 3, `killed at epoch ${ptr.epoch}`);
  await new Promise<void>((res, rej) =>
    run(out, 'resume', 0).on('exit', (c) => (c === 0 ? res() : rej(new Error(`exit ${c}`)))),
  );
  const final = (d: string) =>
    readFileSync(join(d, JSON.parse(readFileSync(join(d, 'checkpoint.json'), 'utf8')).dir, 'model.safetensors'));
  assert.ok(final(out).equals(final(ref)), "resumed weights equal the uninterrupted run's");
  const epochs = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).epoch);
  assert.deepEqual(epochs, [1, 2, 3]);
});

test('the KD loss equals a hand-computed value', () =>
  tidy(() => {
    const s = [2, 0, -1];
    const t = [1, 3, 0];
    const y = 0;
    const T = 4;
    const lambda = 0.7;
    const softmax = (v: number[], temp: number) => {
      const e = v.map((x) => Math.exp(x / temp));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / z);
    };
    const ce = -Math.log(softmax(s, 1)[y]!);
    const ps = softmax(s, T);
    const pt = softmax(t, T);
    const kl = pt.reduce((acc, p, i) => acc + p * Math.log(p / ps[i]!), 0);
    const expected = (1 - lambda) * ce + lambda * T * T * kl;
    const got = kdLoss(tensor(s, [1, 3]), tensor(t, [1, 3]), labels([y]), { temperature: T, lambda }).item();
    assert.ok(Math.abs(got - expected) < 1e-5, `${got} vs ${expected}`);
  }));

test('distillation trains a student toward the teacher', async () => {
  manualSeed(5);
  const teacher = tinyNet();
  await fit(teacher, syntheticData(), opts, tmp());
  manualSeed(6);
  const student = tinyNet();
  const r = await fit(student, syntheticData(), { ...opts, kd: { temperature: 4, lambda: 0.5 } }, tmp(), { teacher });
  assert.ok(r.final!.test_acc > 0.6, `student acc ${r.final!.test_acc}`);
  const ev = await evaluate(student, syntheticData());
  assert.equal(
    ev.confusion.flat().reduce((a, b) => a + b, 0),
    48,
  );
});
