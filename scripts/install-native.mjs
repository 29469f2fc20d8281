// npm's install step of the package: keeps the shipped libtorch addon (native/build/Release) when it loads here,
// else builds it from native/ with node-gyp (npm's own when run by npm). Needs libtorch (Debian's libtorch-dev or
// LIBTORCH=<dir>) only when it builds. Usage: node scripts/install-native.mjs [--check]  (--check: load, never build)
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'native', 'build', 'Release', 'deepreduce_native.node');
const say = (s) => process.stderr.write(`[deepreduce install] ${s}\n`);

function loads() {
  if (!existsSync(addon)) return 'missing';
  try {
    createRequire(import.meta.url)(addon);
    return null;
  } catch (e) {
    return e.message.split('\n')[0];
  }
}

const why = loads();
if (!why) process.exit(0);
say(`the libtorch addon ${why === 'missing' ? 'is missing' : `does not load (${why})`}`);
if (process.argv.includes('--check')) process.exit(1);
say('building it from native/ (a minute or two)');
if (!process.env.LIBTORCH && !existsSync('/usr/include/ATen/ATen.h')) {
  say(
    'libtorch not found: install it (apt-get install libtorch-dev) or set LIBTORCH=<LibTorch dir>, then npm rebuild deepreduce',
  );
  process.exit(1);
}
// npm sets npm_config_node_gyp to its bundled node-gyp; a checkout has its own in node_modules/.bin.
const local = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gyp = process.env.npm_config_node_gyp || (existsSync(local) ? local : null);
if (!gyp) {
  say('node-gyp not found (run this under npm, or npm install node-gyp)');
  process.exit(1);
}
const args = ['rebuild', '-j', '2', '--loglevel=warn'];
if (existsSync('/usr/include/node/node.h')) args.push('--nodedir=/usr'); // Debian's headers: no download
const r = spawnSync(gyp.endsWith('.js') ? process.execPath : gyp, gyp.endsWith('.js') ? [gyp, ...args] : args, {
  cwd: join(root, 'native'),
  stdio: 'inherit',
});
if (r.status !== 0 || loads()) {
  say(`building the addon failed (${loads() ?? `node-gyp exit ${r.status}`})`);
  process.exit(1);
}
say(`built ${addon}`);
