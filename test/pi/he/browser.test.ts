import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../../../../', import.meta.url));

test('the HE preprocessor and the RLWE core bundle for the browser (no Node-only API)', async () => {
  const r = await build({
    entryPoints: [`${root}src/pi/linear/he/preprocess.ts`],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    metafile: true,
  });
  assert.equal(r.errors.length, 0);
  const inputs = Object.keys(r.metafile.inputs);
  assert.ok(
    inputs.some((f) => f.endsWith('src/pi/he/rlwe.ts')) && inputs.some((f) => f.endsWith('src/pi/he/wasm.ts')),
    inputs.join(', '),
  );
  for (const f of inputs) assert.doesNotMatch(f, /node:|src\/engine\/|native\//, `bundled ${f}`);
});
