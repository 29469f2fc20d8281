// Every benchmark (dist/bench/*.js and dist/bench/peers/run.js) answers --help with its usage: exit 0, a
// "Usage: node dist/bench/..." line, no stack trace, and no run (each returns within seconds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../../bench/', import.meta.url));
// bench/peers/run.js (the peers built from source) sits in its own folder with build.sh and driver.cpp.
const benches = [...readdirSync(dir).filter((f) => f.endsWith('.js')), 'peers/run.js'];

test('every bench answers --help with its usage', () => {
  assert.ok(benches.length >= 15, `found ${benches.length} benches in ${dir}`);
  for (const f of benches) {
    const r = spawnSync(process.execPath, [join(dir, f), '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `${f} --help: exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`);
    // web-crypto runs inside bench/browser.js's page: its usage names that command.
    const name = f === 'web-crypto.js' ? 'browser.js' : f;
    assert.match(r.stdout, new RegExp(`^Usage: node dist/bench/${name.replace('.', '\\.')}`, 'm'), `${f}: ${r.stdout}`);
    assert.doesNotMatch(`${r.stdout}${r.stderr}`, /\n\s+at .+:\d+:\d+/, `${f}: a stack trace`);
  }
});
