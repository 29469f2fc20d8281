// scripts/check-structure.mjs on this tree (passes) and on copies of it with one bad import each (fails, naming it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = join(root, 'scripts', 'check-structure.mjs');
const check = (dir: string) => spawnSync(process.execPath, [script, '--root', dir, '--no-tsc'], { encoding: 'utf8' });

test('this tree: no upward import, no cycle', () => {
  const r = check(root);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /no upward import/);
  assert.match(r.stdout, /no cycle/);
  assert.match(
    r.stdout,
    /order util < engine < data < models < zoo < train < export < pi < reduce < queue < cli < index\.ts/,
  );
});

/** A copy of src/ with `line` appended to one file. */
function mutated(file: string, line: string): ReturnType<typeof check> {
  const dir = mkdtempSync(join(tmpdir(), 'dr-structure-'));
  try {
    cpSync(join(root, 'src'), join(dir, 'src'), { recursive: true });
    appendFileSync(join(dir, 'src', file), `\n${line}\n`);
    return check(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('an upward import between folders fails (and makes a cycle)', () => {
  const r = mutated('engine/tensor.ts', "import type { ReduceConfig } from '../reduce/pipeline.js';");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /src\/engine\/tensor\.ts: upward import engine -> reduce/);
  assert.match(
    r.stderr,
    /import cycle between folders of src\/: .*engine.*reduce|import cycle between folders of src\/: .*reduce.*engine/,
  );
  assert.doesNotMatch(r.stdout, /no upward import/);
});

test('a child process started through the CLI from below it fails', () => {
  const r = mutated('reduce/jobs.ts', "export const viaCli = () => new URL('../cli/main.js', import.meta.url);");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /src\/reduce\/jobs\.ts: starts the CLI \(cli\/main\.js\) from below it/);
});

test('an upward import inside pi fails: crypto -> ot', () => {
  const r = mutated('pi/crypto/prg.ts', "import type { OtExtSender } from '../ot/iknp.js';");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /src\/pi\/crypto\/prg\.ts: upward import inside pi, crypto -> ot/);
});

test('the core importing a Node builtin or the Node part fails; web importing the Node part fails', () => {
  let r = mutated('pi/bits.ts', "import { readFileSync } from 'node:fs';");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /src\/pi\/bits\.ts: the browser-safe core of pi imports the Node-only 'node:fs'/);
  r = mutated('pi/protocol.ts', "import type { SessionPool } from './node/serve.js';");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /src\/pi\/protocol\.ts: .*core imports the Node part/);
  r = mutated('web/session.ts', "import type { SessionPool } from '../pi/node/serve.js';");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /src\/web\/session\.ts: web imports the Node part of pi/);
});
