// The layering of src/, checked: every relative import points down the declared order, no two folders import each
// other (directly or round a cycle), src/pi's browser-safe core imports nothing Node-only, and (unless --no-tsc) the
// core type-checks with no Node typings (src/pi/tsconfig.json). Prints the facts; exits 1 naming each violation.
// Usage: node scripts/check-structure.mjs [--root DIR] [--no-tsc]   (--root: a tree with its own src/, for tests)
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const root = argv.includes('--root') ? resolve(argv[argv.indexOf('--root') + 1]) : here;
const runTsc = !argv.includes('--no-tsc');

/**
 * Top-level folders of src/, lowest first: a folder may import only folders before it. Derived from the code: engine
 * wraps the addon; data and models sit on engine; zoo (named model directories, fp16 storage) is read by train's
 * model-directory loader; train on models and data; export reads trained model directories;
 * pi compiles trained models (pi/node) into plans; reduce trains, measures PI and reports; queue runs reduce's
 * trainings on other machines; cli and index.ts (the library face) on top. web (the browser client) is apart: it may
 * import only pi's browser-safe core.
 */
const LAYERS = [
  'util',
  'engine',
  'data',
  'models',
  'zoo',
  'train',
  'export',
  'pi',
  'reduce',
  'queue',
  'cli',
  'index.ts',
];
const WEB = { folder: 'web', may: ['pi'] };

/**
 * Inside src/pi, groups by path prefix (longest wins), lowest first. transport/ (the Channel interface, link shaping,
 * the WebSocket channel) is what every protocol talks over, so it is the bottom; then the values and coins every layer
 * shares; crypto (AES, PRG, the SIMD kernels); OT; the primitives on OT and the ring (garbled circuits, HE,
 * millionaires', the public ring ops); the plan; the ReLU protocols and linear-layer preprocessors; the session
 * protocol; what the page reads; node/ (TCP/TLS, workers, libtorch, files: Node-only) on top.
 */
const PI_LAYERS = [
  ['transport'],
  [
    'fixed.ts',
    'random.ts',
    'bits.ts',
    'wire.ts',
    'relusite.ts',
    'ringlinear.ts',
    'messages.ts',
    'registry.ts',
    'host.d.ts',
  ],
  ['crypto'],
  ['ot'],
  ['gc', 'he', 'millionaire', 'linear/pool.ts'],
  ['plan.ts'],
  ['relu', 'linear', 'schedule.ts'],
  ['protocol.ts', 'retry.ts'],
  ['image.ts', 'web'],
  ['node'],
];
/** The one Node module in the core: the bundler swaps it for platform.browser.ts (scripts/build-web.mjs). */
const CORE_NODE_EXCEPTION = 'crypto/platform.ts';

const src = join(root, 'src');
function walk(d, out = []) {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) {
      if (!p.endsWith(join('pi', 'he', 'asm'))) walk(p, out);
    } else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}
const IMPORT =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]*?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const builtins = new Set(builtinModules);
const isNodeBuiltin = (s) => s.startsWith('node:') || builtins.has(s.split('/')[0]);
/** Packages only Node can load (native or Node-API based); the core must not import them either. */
const NODE_PACKAGES = [
  'pngjs',
  'ws',
  'commander',
  'cli-progress',
  'bullmq',
  'ioredis',
  'onnxruntime-node',
  'tar',
  'jpeg-js',
  '@peculiar/x509',
  'reflect-metadata',
];

const files = walk(src).map((f) => relative(src, f).split('\\').join('/'));
const top = (f) => (f.includes('/') ? f.split('/')[0] : f);
const piGroup = (f) => {
  const p = f.slice('pi/'.length);
  let best = null;
  PI_LAYERS.forEach((g, layer) =>
    g.forEach((prefix) => {
      if ((p === prefix || p.startsWith(`${prefix}/`)) && (!best || prefix.length > best.prefix.length))
        best = { prefix, layer };
    }),
  );
  return best;
};

const errors = [];
const folderEdges = new Map(); // 'a -> b' -> first file import
const piEdges = new Map();
let imports = 0;
for (const f of files) {
  const text = readFileSync(join(src, f), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
  // A process started from below the CLI must have its own entry in its layer (train/entry.ts, pi/node/main.ts).
  if (top(f) !== 'cli' && /cli\/main\.js/.test(text))
    errors.push(
      `src/${f}: starts the CLI (cli/main.js) from below it; give the child process an entry in its own layer`,
    );
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    const from = top(f);
    if (!spec.startsWith('.')) {
      if (
        f.startsWith('pi/') &&
        !f.startsWith('pi/node/') &&
        f !== `pi/${CORE_NODE_EXCEPTION}` &&
        (isNodeBuiltin(spec) || NODE_PACKAGES.includes(spec))
      ) {
        errors.push(
          `src/${f}: the browser-safe core of pi imports the Node-only '${spec}' (move the file under src/pi/node/)`,
        );
      }
      continue;
    }
    imports++;
    const target = posix.normalize(posix.join(posix.dirname(f), spec)).replace(/\.js$/, '.ts');
    if (target.startsWith('..')) {
      errors.push(`src/${f}: imports '${spec}' outside src/`);
      continue;
    }
    const to = top(target);
    if (from !== to) {
      const key = `${from} -> ${to}`;
      const edge = `${f} -> ${target}`;
      if (!folderEdges.has(key)) folderEdges.set(key, edge);
      if (from === WEB.folder) {
        if (!WEB.may.includes(to))
          errors.push(`src/${f}: web may import only ${WEB.may.join(', ')}, not ${to} ('${spec}')`);
        else if (target.startsWith('pi/node/')) errors.push(`src/${f}: web imports the Node part of pi ('${spec}')`);
      } else if (to === WEB.folder) {
        errors.push(`src/${f}: imports the browser client src/web ('${spec}')`);
      } else {
        const a = LAYERS.indexOf(from),
          b = LAYERS.indexOf(to);
        if (a < 0)
          errors.push(`src/${f}: folder '${from}' is not in the declared layers of scripts/check-structure.mjs`);
        else if (b < 0) errors.push(`src/${f}: imports folder '${to}', which is not in the declared layers`);
        else if (b > a)
          errors.push(`src/${f}: upward import ${from} -> ${to} ('${spec}'; order: ${LAYERS.join(' < ')})`);
      }
    } else if (from === 'pi') {
      const ga = piGroup(f),
        gb = piGroup(target);
      if (!ga) {
        errors.push(`src/${f}: not in any declared group of src/pi`);
        continue;
      }
      if (!gb) {
        errors.push(`src/${target}: not in any declared group of src/pi`);
        continue;
      }
      if (ga.prefix !== gb.prefix) {
        const key = `${ga.prefix} -> ${gb.prefix}`;
        if (!piEdges.has(key)) piEdges.set(key, `${f} -> ${target}`);
        if (gb.layer > ga.layer)
          errors.push(`src/${f}: upward import inside pi, ${ga.prefix} -> ${gb.prefix} ('${spec}')`);
        if (ga.prefix !== 'node' && gb.prefix === 'node')
          errors.push(`src/${f}: the browser-safe core imports the Node part ('${spec}')`);
      }
    }
  }
}

/** Cycles of a directed graph given as 'a -> b' keys (Tarjan's strongly connected components of size > 1). */
function cycles(edgeKeys) {
  const adj = new Map();
  for (const k of edgeKeys) {
    const [a, b] = k.split(' -> ');
    if (!adj.has(a)) adj.set(a, []);
    if (!adj.has(b)) adj.set(b, []);
    adj.get(a).push(b);
  }
  let index = 0;
  const idx = new Map(),
    low = new Map(),
    on = new Set(),
    stack = [],
    out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of adj.get(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const c = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) out.push(c.reverse());
    }
  };
  for (const v of adj.keys()) if (!idx.has(v)) visit(v);
  return out;
}
for (const c of cycles(folderEdges.keys()))
  errors.push(
    `import cycle between folders of src/: ${c.join(' <-> ')} (e.g. ${c
      .map((a, i) => folderEdges.get(`${a} -> ${c[(i + 1) % c.length]}`))
      .filter(Boolean)
      .join('; ')})`,
  );
for (const c of cycles(piEdges.keys())) errors.push(`import cycle between groups of src/pi: ${c.join(' <-> ')}`);

const folders = new Set(files.map(top));
console.log(
  `[structure] src/: ${[...folders].filter((x) => !x.endsWith('.ts')).length} folders, ${files.length} modules, ${imports} relative imports, ${folderEdges.size} edges between folders; order ${LAYERS.join(' < ')}; web on pi's core only`,
);
console.log(
  `[structure] src/pi: ${PI_LAYERS.length} layers of ${PI_LAYERS.flat().length} groups, ${piEdges.size} edges between groups; order ${PI_LAYERS.map((g) => g.join(' | ')).join(' < ')}`,
);
if (
  !errors.some(
    (e) =>
      e.includes('upward') || e.includes('may import only') || e.includes('Node part') || e.includes('starts the CLI'),
  )
)
  console.log('[structure] no upward import (nor a child process started through the CLI)');
if (!errors.some((e) => e.includes('cycle'))) console.log('[structure] no cycle');
if (!errors.some((e) => e.includes('Node-only')))
  console.log("[structure] no Node-only import in pi's core (but crypto/platform.ts, which the bundler swaps)");

if (runTsc) {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'src', 'pi', 'tsconfig.json')], { encoding: 'utf8' });
  if (r.status === 0)
    console.log(
      '[structure] pi core type-checks without Node types (src/pi/tsconfig.json: types [], lib ES2022, host.d.ts)',
    );
  else errors.push(`pi core does not type-check without Node types:\n${(r.stdout + r.stderr).trim()}`);
}

if (errors.length) {
  for (const e of errors) console.error(`[structure] ${e}`);
  process.exit(1);
}
