// Bundles the browser client (src/web/main.ts) with esbuild for the browser: dist/web/ holds the page, its script and
// its style sheet. Fails if any module of the client's graph imports a Node builtin (esbuild cannot resolve one for
// platform 'browser'; the check below also names the importer). `--check` prints the graph's Node imports and exits.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
const src = `${join(root, 'src')}/`;
const builtins = new Set(builtinModules);

/** The crypto backend chosen at load: the browser one in place of node:crypto (src/pi/crypto/backend.ts). */
const browserBackend = {
  name: 'browser-crypto-backend',
  setup(b) {
    const platform = join(src, 'pi', 'crypto', 'platform.js');
    b.onResolve({ filter: /platform\.js$/ }, (a) =>
      join(a.resolveDir, a.path) === platform ? { path: platform.replace(/\.js$/, '.browser.ts') } : undefined,
    );
    // NodeNext sources import './x.js' for './x.ts'.
    b.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (a) =>
      a.importer.startsWith(src) ? { path: join(a.resolveDir, a.path.replace(/\.js$/, '.ts')) } : undefined,
    );
    b.onResolve({ filter: /.*/ }, (a) => {
      const bare = a.path.replace(/^node:/, '').split('/')[0];
      if (a.path.startsWith('node:') || builtins.has(bare)) {
        return {
          errors: [
            {
              text: `the browser client imports the Node builtin '${a.path}' (from ${a.importer.slice(root.length + 1)})`,
            },
          ],
        };
      }
      return undefined;
    });
  },
};

export async function bundleWeb({
  entry = join(root, 'src', 'web', 'main.ts'),
  outdir = out,
  minify = true,
  write = true,
} = {}) {
  if (write) mkdirSync(outdir, { recursive: true });
  const r = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['chrome110', 'firefox115', 'safari16'],
    outfile: join(outdir, 'app.js'),
    minify,
    sourcemap: true,
    metafile: true,
    write,
    logLevel: 'silent',
    plugins: [browserBackend],
    legalComments: 'linked',
  });
  if (write) for (const f of ['index.html', 'style.css']) copyFileSync(join(root, 'src', 'web', f), join(outdir, f));
  return r;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const r = await bundleWeb();
    const bytes = Object.values(r.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
    console.log(`[web] dist/web: ${Object.keys(r.metafile.inputs).length} modules, ${(bytes / 1024).toFixed(0)} KiB`);
  } catch (e) {
    console.error(`[web] bundle failed: ${e.message}`);
    process.exit(1);
  }
}
