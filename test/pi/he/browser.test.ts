import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));

// Bundled as the page is (scripts/build-web.mjs: the browser crypto backend in place of node:crypto; a Node builtin
// left in the graph fails the bundle with its importer's name).
test('the HE preprocessor and the RLWE core bundle for the browser (no Node-only API)', async () => {
  const { bundleWeb } = (await import(pathToFileURL(`${root}scripts/build-web.mjs`).href)) as {
    bundleWeb: (o: {
      entry?: string;
      write?: boolean;
    }) => Promise<{ errors?: unknown[]; metafile: { inputs: Record<string, unknown> } }>;
  };
  const r = await bundleWeb({ entry: `${root}src/pi/linear/he/preprocess.ts`, write: false });
  assert.equal(r.errors?.length ?? 0, 0);
  const inputs = Object.keys(r.metafile.inputs);
  assert.ok(
    inputs.some((f) => f.endsWith('src/pi/he/rlwe.ts')) && inputs.some((f) => f.endsWith('src/pi/he/wasm.ts')),
    inputs.join(', '),
  );
  for (const f of inputs) assert.doesNotMatch(f, /node:|src\/engine\/|native\/|crypto\/platform\.ts$/, `bundled ${f}`);
});
