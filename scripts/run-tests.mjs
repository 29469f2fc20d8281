// Runs every compiled test file under dist/test with node's built-in runner.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const filter = process.argv.slice(2);
let files = find('dist/test').sort();
if (filter.length) files = files.filter((f) => filter.some((s) => f.includes(s)));
if (!files.length) {
  console.error('no test files found');
  process.exit(1);
}
// A test that hangs fails instead (a broken length-prefix check once hung transport.test). Node 20 applies
// --test-timeout to each test FILE as a whole (its process under the runner), not to each test() in it: the bound
// covers the slowest file, test/pi/web/web.test.ts (a headless-browser session may take up to 240 s on a loaded
// 2-core machine), with margin. TEST_TIMEOUT_MS overrides it.
const timeoutMs = Number(process.env.TEST_TIMEOUT_MS ?? 600_000);
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
  console.error(`TEST_TIMEOUT_MS must be a positive integer, got '${process.env.TEST_TIMEOUT_MS}'`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', `--test-timeout=${timeoutMs}`, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
