// The base OTs of a PI session's set-up: milliseconds per batch of 128 Chou-Orlandi OTs, both parties in this process
// (one thread, so the CPU time is both parties' work together), for the construction in use and the ones it replaced:
//   p256-node    P-256, scalar multiplications by node:crypto ECDH (OpenSSL): what Node runs now
//   p256-web     P-256, the browser back-end (WebCrypto ECDH + noble fixed-base) on Node's WebCrypto
//   p256-js      P-256, every multiplication in pure JS (@noble/curves): the browser's fallback without crypto.subtle
//   ristretto    ristretto255 in pure JS (@noble/curves): the construction before (deepreduce-pi/5), kept here only
// Reps interleave the variants (a shared machine drifts); medians and minima are reported.
// --browser also runs p256-web, p256-js and ristretto in headless Chromium (the page bundled as the client is; wall
// time, ratios against ristretto@chromium).
// Usage: node dist/bench/baseot.js [--count 128] [--reps 15] [--only p256-node,ristretto,...] [--browser] [--json]
import './lib/help.js';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { channelPair } from '../src/pi/transport/channel.js';
import { platformP256 as nodeEc } from '../src/pi/crypto/platform.js';
import { platformP256 as webEc } from '../src/pi/crypto/platform.browser.js';
import { generateIdentity } from '../src/pi/node/transport/tls.js';
import { launchBrowser } from '../test/pi/web/browser.js';
import { measure, variants as onBackend, type Row } from './lib/baseot-variants.js';

const { values: a } = parseArgs({
  options: {
    count: { type: 'string', default: '128' },
    reps: { type: 'string', default: '15' },
    only: { type: 'string' },
    json: { type: 'boolean' },
    browser: { type: 'boolean' },
  },
});
const count = Number(a.count),
  reps = Number(a.reps);
if (!(count >= 1 && count <= 4096 && reps >= 1)) throw new Error('--count in 1..4096, --reps >= 1');

const all = [
  ...onBackend(nodeEc, 'p256-node'),
  { ...onBackend(webEc, 'p256-web')[0]!, what: `${webEc.name} (on Node's WebCrypto)` },
];
const only = a.only?.split(',');
const variants = only ? all.filter((v) => only.includes(v.name)) : all;
if (!variants.length) throw new Error(`--only: none of ${all.map((v) => v.name).join(', ')}`);
const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e3;
};
const rows: Row[] = await measure(variants, count, reps, channelPair, cpuMs);

/** The page's variants (p256-web on Chromium's WebCrypto, p256-js, ristretto), bundled as the client is. */
async function inChromium(): Promise<Row[]> {
  const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
  const { bundleWeb } = (await import(pathToFileURL(join(root, 'scripts/build-web.mjs')).href)) as {
    bundleWeb(o: object): Promise<{ outputFiles: { path: string; text: string }[] }>;
  };
  const b = await bundleWeb({ entry: join(root, 'bench/lib/baseot-page.ts'), write: false, minify: false });
  const code = b.outputFiles.find((f) => f.path.endsWith('.js'))!.text;
  const id = await generateIdentity();
  const browser = await launchBrowser(id.cert);
  try {
    const page = await browser.context.newPage();
    // A secure context (crypto.subtle) with no server: the page is answered by the route.
    await page.route('https://baseot.bench/', (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html>' }));
    await page.goto('https://baseot.bench/');
    const ua = (await page.evaluate('navigator.userAgent')) as string;
    const got = (await page.evaluate(`${code}\nglobalThis.baseOtBench(${count}, ${reps})`)) as Row[];
    return got.map((r) => ({
      ...r,
      variant: `${r.variant}@chromium`,
      what: `${r.what} (${ua.match(/Chrome\/[\d.]+/)?.[0] ?? 'Chromium'})`,
    }));
  } finally {
    await browser.close();
  }
}
if (a.browser) rows.push(...(await inChromium()));

if (a.json) console.log(JSON.stringify({ bench: 'baseot', node: process.version, rows }, null, 2));
else {
  const base = rows.find((r) => r.variant === 'ristretto');
  const baseWeb = rows.find((r) => r.variant === 'ristretto@chromium');
  const f = (x: number | null) => String(x ?? '-').padStart(7);
  console.log(`base OTs: ${count} per batch, both parties in one process, ${reps} reps (median / min, ms)`);
  for (const r of rows) {
    const ref = r.variant.endsWith('@chromium') ? baseWeb : base;
    const key = r.variant.endsWith('@chromium') ? 'wallMsMedian' : 'cpuMsMedian';
    const x = ref && r !== ref ? `  x${Math.round((ref[key]! / r[key]!) * 10) / 10} vs ${ref.variant}` : '';
    console.log(
      `${r.variant.padEnd(18)} wall ${f(r.wallMsMedian)} / ${f(r.wallMsMin)}   cpu ${f(r.cpuMsMedian)} / ${f(r.cpuMsMin)}${x}   ${r.what}`,
    );
  }
}
