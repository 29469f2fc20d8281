// The browser bundle: the page's whole import graph bundles for platform 'browser' with the browser crypto backend,
// and no Node builtin remains in it; a module that imports one fails the bundle with its name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

interface Bundle {
  metafile: { inputs: Record<string, unknown> };
  outputFiles: { path: string; text: string }[];
}
type BundleWeb = (o: { entry?: string; write?: boolean; outdir?: string }) => Promise<Bundle>;
const { bundleWeb } = (await import(pathToFileURL(resolve('scripts', 'build-web.mjs')).href)) as {
  bundleWeb: BundleWeb;
};

test('the page bundles for the browser: the noble backend in, node:crypto out, no node: import left', async () => {
  const r = await bundleWeb({ write: false });
  const inputs = Object.keys(r.metafile.inputs);
  assert.ok(
    inputs.some((f) => f.endsWith('src/pi/crypto/platform.browser.ts')),
    'the browser crypto backend is bundled',
  );
  assert.ok(!inputs.some((f) => f.endsWith('src/pi/crypto/platform.ts')), 'the Node crypto backend is not');
  for (const m of [
    'src/pi/protocol.ts',
    'src/pi/transport/ws.ts',
    'src/pi/linear/he/preprocess.ts',
    'src/pi/relu/ot/protocol.ts',
    'src/pi/millionaire/millionaire.ts',
    'src/pi/ot/kkot.ts',
    'src/pi/ot/iknp.ts',
    'src/pi/relu/gc/protocol.ts',
    'src/pi/plan.ts',
  ]) {
    assert.ok(
      inputs.some((f) => f.endsWith(m)),
      `${m} is in the client graph`,
    );
  }
  for (const m of ['src/pi/node/', 'src/engine/']) {
    assert.ok(!inputs.some((f) => f.includes(m)), `${m} stays out of the client graph`);
  }
  const js = r.outputFiles.find((f) => f.path.endsWith('app.js'))!.text;
  assert.ok(js.length > 10_000);
  assert.doesNotMatch(js, /["'`]node:[a-z_/]+["'`]/, 'a node: import remains in the bundle');
  assert.doesNotMatch(js, /\brequire\(/, 'a require() remains in the bundle');
});

test('a module of the client graph that imports a Node builtin fails the bundle, naming it and its importer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deepreduce-bundle-'));
  try {
    const entry = join(dir, 'entry.ts');
    writeFileSync(entry, "import { createHash } from 'node:crypto';\nexport const h = createHash('sha256');\n");
    await assert.rejects(bundleWeb({ entry, write: false }), /imports the Node builtin 'node:crypto'/);
    writeFileSync(entry, "import { readFileSync } from 'fs';\nexport const f = readFileSync;\n");
    await assert.rejects(bundleWeb({ entry, write: false }), /imports the Node builtin 'fs'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
