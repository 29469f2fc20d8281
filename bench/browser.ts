// The browser client against the Node (CLI) client on one server: `deepreduce pi serve --web` for a model (default the
// C100_12K ResNet18 preset, 32x32, 100 classes, random weights), then alternately the CLI client (`pi query --json`, its
// own process) and the page in headless Chromium on the same 32x32 image; per phase the client's wall time (medians
// over --runs) and the ratio browser / Node. Also AES throughput in the browser: WebCrypto against @noble/ciphers at
// the protocol's batch sizes (bench/web-crypto.ts). Heavy: run it under nice on a quiet machine.
// Usage: node dist/bench/browser.js [--preset C100_12K] [--runs 3] [--relu NAME] [--out FILE.json] [--no-crypto]
//        [--profile DIR: the page's V8 CPU profile of each run into DIR (open in Chrome DevTools)]
import './lib/help.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { PNG } from 'pngjs';
import { writeFileAtomic } from '../src/util/fs.js';
import { generateIdentity } from '../src/pi/node/transport/tls.js';
import type { Phase } from '../src/pi/protocol.js';
import { launchBrowser } from '../test/pi/web/browser.js';
import type { CryptoRow } from './web-crypto.js';

const { values: a } = parseArgs({
  options: {
    preset: { type: 'string', default: 'C100_12K' },
    input: { type: 'string', default: '32' },
    classes: { type: 'string', default: '100' },
    runs: { type: 'string', default: '3' },
    relu: { type: 'string' },
    out: { type: 'string' },
    'no-crypto': { type: 'boolean' },
    profile: { type: 'string' },
  },
});
const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '../src/cli/main.js');
const PHASES: Phase[] = ['setup', 'offline', 'online'];
type Phases = Record<Phase, { ms: number }>;

/** Resolves with the first match of `re` in everything `p` has written to stderr so far or writes later. */
function waitLine(p: ChildProcess, log: { text: string }, re: RegExp, what: string): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const poll = () => {
      const m = log.text.match(re);
      if (m) return resolve(m);
      if (p.exitCode !== null) return reject(new Error(`${what} exited (${p.exitCode}):\n${log.text}`));
      if (Date.now() - t0 > 600_000)
        return reject(new Error(`${what}: no line matching ${re} within 600 s:\n${log.text}`));
      setTimeout(poll, 100);
    };
    poll();
  });
}

function runCli(port: number, pin: string, png: string, relu?: string): Promise<{ phases: Phases; cls: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      [
        cli,
        'pi',
        'query',
        '--connect',
        `127.0.0.1:${port}`,
        '--pin',
        pin,
        '--input',
        png,
        '--json',
        ...(relu ? ['--relu', relu] : []),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('exit', (c) => {
      if (c !== 0) return reject(new Error(`pi query exited with ${c}`));
      const j = JSON.parse(out) as { predicted: number; phases: Phases };
      resolve({ phases: j.phases, cls: j.predicted });
    });
  });
}

const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'deepreduce-bench-browser-'));
  const id = await generateIdentity({ commonName: 'bench-browser' });
  writeFileSync(join(dir, 'cert.pem'), id.cert);
  writeFileSync(join(dir, 'key.pem'), id.key);
  const side = Number(a.input);
  const png = new PNG({ width: side, height: side });
  for (let i = 0; i < png.data.length; i++) png.data[i] = i % 4 === 3 ? 255 : (i * 2654435761) >>> 24;
  const pngFile = join(dir, 'image.png');
  writeFileSync(pngFile, PNG.sync.write(png));
  const server = spawn(
    process.execPath,
    [
      cli,
      'pi',
      'serve',
      '--preset',
      a.preset!,
      '--input',
      a.input!,
      '--classes',
      a.classes!,
      '--port',
      '0',
      '--web',
      '--web-port',
      '0',
      '--cert',
      join(dir, 'cert.pem'),
      '--key',
      join(dir, 'key.pem'),
      '--max-sessions',
      '2',
      ...(a.relu ? ['--relu', a.relu] : []),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const log = { text: '' };
  server.stderr!.on('data', (d: Buffer) => {
    log.text += d.toString();
    process.stderr.write(d);
  });
  const browser = await launchBrowser(id.cert);
  try {
    const port = Number((await waitLine(server, log, /serving .* on 127\.0\.0\.1:(\d+) over TLS/, 'pi serve'))[1]);
    const url = (await waitLine(server, log, /browser client on (https:\/\/\S+\/)/, 'pi serve --web'))[1]!;
    const page = await browser.context.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 60_000 });
    let crypto: CryptoRow[] | null = null;
    if (!a['no-crypto']) {
      const b = await build({
        entryPoints: [join(here, '../../bench/web-crypto.ts')],
        bundle: true,
        platform: 'browser',
        format: 'iife',
        globalName: 'webCryptoBench',
        write: false,
      });
      crypto = (await page.evaluate(`${b.outputFiles[0]!.text}\nwebCryptoBench.run()`)) as CryptoRow[];
    }
    const node: Phases[] = [],
      web: Phases[] = [];
    const classes: number[][] = [];
    const held: number[] = [];
    for (let r = 0; r < Number(a.runs); r++) {
      const c = await runCli(port, id.fingerprint, pngFile, a.relu);
      node.push(c.phases);
      await page.goto(url); // a fresh page per run (choosing the same file again fires no change event)
      await page.waitForSelector('body[data-state="ready"]', { timeout: 60_000 });
      await page.setInputFiles('#file', pngFile);
      await page.waitForSelector('body[data-state="ready"]');
      const cdp = a.profile ? await browser.context.newCDPSession(page) : null;
      if (cdp) {
        await cdp.send('Profiler.enable');
        await cdp.send('Profiler.start');
      }
      await page.getByRole('button', { name: 'Classify privately' }).click();
      await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 1_200_000 });
      if (cdp) {
        const { profile } = await cdp.send('Profiler.stop');
        writeFileAtomic(join(a.profile!, `page-${r + 1}.cpuprofile`), JSON.stringify(profile));
      }
      const res = (await page.evaluate('globalThis.piResult')) as
        | { class: number; phases: Phases; memory: { peakHeldBytes: number } }
        | undefined;
      if (!res) throw new Error(`the page failed: ${await page.locator('#run-error').textContent()}`);
      web.push(res.phases);
      held.push(res.memory.peakHeldBytes);
      classes.push([c.cls, res.class]);
      process.stderr.write(
        `[bench] run ${r + 1}: node ${PHASES.map((p) => c.phases[p].ms.toFixed(0)).join('/')} ms, browser ${PHASES.map((p) => res.phases[p].ms.toFixed(0)).join('/')} ms (setup/offline/online)\n`,
      );
    }
    const rows = [...PHASES, 'total' as const].map((p) => {
      const pick = (x: Phases) => (p === 'total' ? PHASES.reduce((s, q) => s + x[q].ms, 0) : x[p].ms);
      const n = median(node.map(pick)),
        w = median(web.map(pick));
      return { phase: p, nodeMs: n, browserMs: w, ratio: w / n };
    });
    console.log(
      `model ${a.preset} ${a.input}x${a.input}, ${a.classes} classes, relu ${a.relu ?? 'the page default'}; ${a.runs} runs (medians); classes node/browser: ${classes.map((c) => c.join('/')).join(', ')}`,
    );
    console.log(`browser client's protocol state at peak: ${(median(held) / 1e6).toFixed(1)} MB`);
    console.log('phase      node ms   browser ms   browser/node');
    for (const r of rows)
      console.log(
        `${r.phase.padEnd(9)} ${r.nodeMs.toFixed(0).padStart(8)} ${r.browserMs.toFixed(0).padStart(12)} ${r.ratio.toFixed(2).padStart(14)}`,
      );
    if (crypto) {
      console.log('\nAES in the browser (MB/s): bytes  noble-ECB  noble-CTR  WebCrypto-CTR');
      for (const c of crypto)
        console.log(
          `${String(c.bytes).padStart(36)} ${c.nobleEcbMBs.toFixed(0).padStart(10)} ${c.nobleCtrMBs.toFixed(0).padStart(10)} ${c.webcryptoCtrMBs.toFixed(0).padStart(14)}`,
        );
    }
    if (a.out)
      writeFileAtomic(
        a.out,
        `${JSON.stringify({ preset: a.preset, input: side, classes: Number(a.classes), relu: a.relu ?? null, runs: Number(a.runs), rows, node, browser: web, predicted: classes, browserHeldBytes: held, crypto }, null, 2)}\n`,
      );
  } finally {
    await browser.close();
    server.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
