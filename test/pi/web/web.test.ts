// The browser client end to end in headless Chromium: the page classifies Fashion-MNIST test images from the gallery
// (OT ReLU, HE preprocessing) with the same classes as the Node client (runClient over TLS) on the same PNGs and model; bad input
// gets a clear message; a crafted short input share is refused by the server with a code the page shows; the server's
// received transcript of a browser session equals a Node client's with the same coins; a closed tab frees its session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { buildNetwork, specFor } from '../../../src/models/index.js';
import { manualSeed } from '../../../src/engine/index.js';
import { loadDataset } from '../../../src/data/index.js';
import { compilePlan, referenceForward } from '../../../src/pi/node/compile.js';
import type { ServerModel } from '../../../src/pi/plan.js';
import { runClient, type SessionState } from '../../../src/pi/protocol.js';
import { servePi, SessionPool, type PiServer } from '../../../src/pi/node/serve.js';
import { datasetGallery, serveWeb, type GalleryImage, type WebServer } from '../../../src/pi/node/web/server.js';
import { connectChannel } from '../../../src/pi/node/transport/tcp.js';
import { quantize } from '../../../src/pi/fixed.js';
import { inputSpec, prepareImage } from '../../../src/pi/image.js';
import { seededClientRandomness, seededRandom, serverRandomness } from '../../../src/pi/random.js';
import { identity, pinned, serverSecurity } from '../helpers/tls.js';
import { Transcript, transcriptDifference } from '../helpers/transcript.js';
import { launchBrowser, type Browser } from './browser.js';
import { WEB_RELU } from '../../../src/pi/web/info.js';

const OUT = join('dist', 'test-output', 'pi-web');
/** The page's ReLU protocol (the OT ReLU); the Node client asks for the same. */
const RELU = WEB_RELU;
/** The OT ReLU truncates shares locally: a secure logit is within a few units of 2^-f of the reference (docs/pi.md). */
const TOL = 0.05;
const SESSION_MS = 240_000; // one private classification on a loaded 2-core machine, with room

let model: ServerModel, gallery: GalleryImage[], pool: SessionPool, tcp: PiServer, web: WebServer, browser: Browser;
const errors: string[] = [];
let transcripts: Transcript[] = [];
let states: WeakRef<SessionState>[] = [];
let serverSeed: string | null = null;

before(async () => {
  mkdirSync(OUT, { recursive: true });
  const fm = loadDataset('fashion-mnist', 'test');
  manualSeed(5);
  // A tiny random-weight ResNet on Fashion-MNIST's input (28x28 grey padded to 32): ~1.5K ReLUs keeps Chromium's CPU modest.
  const net = buildNetwork(
    specFor('resnet20', { alpha: 0.125, rho: 0.25, inputSize: 32, inChannels: 1, numClasses: 10 }),
  ).eval();
  model = compilePlan(net, {
    input: {
      mean: fm.mean,
      std: fm.std,
      padFrom: 28,
      dataset: 'fashion-mnist',
      ...(fm.classNames ? { classNames: fm.classNames } : {}),
    },
  });
  net.dispose();
  gallery = datasetGallery('fashion-mnist', 3);
  const S = await identity('web-server');
  pool = new SessionPool(model, {
    maxSessions: 2,
    onSession: () => {},
    // per session: a fixed server coin stream when a test sets one, the system CSPRNG otherwise
    randomFor: () => (serverSeed ? serverRandomness(seededRandom(serverSeed)) : serverRandomness()),
    hooks: {
      onStart: (st) => {
        states.push(new WeakRef(st));
        const t = new Transcript();
        t.tap(st.channels[0]!, 'client');
        transcripts.push(t);
      },
    },
  });
  tcp = await servePi(model, { port: 0, security: serverSecurity(S), pool, onError: (e) => errors.push(e.message) });
  web = await serveWeb({
    port: 0,
    tls: { cert: S.cert, key: S.key },
    pool,
    preprocess: 'he',
    relu: RELU,
    gallery,
    testHooks: true,
    onError: (e) => errors.push(e.message),
  });
  browser = await launchBrowser(S.cert);
});

after(async () => {
  await browser?.close();
  await web?.close();
  await tcp?.close();
  model?.dispose();
});

async function openPage(query = ''): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  await page.goto(`${web.url}${query}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 30_000 });
  return page;
}

async function classifyGallery(
  page: Page,
  i: number,
): Promise<{ class: number; logits: number[]; schedule: number[] }> {
  await page.getByRole('button', { name: new RegExp(`^Test image ${i + 1}\\b`) }).click();
  await page.waitForSelector('body[data-state="ready"]');
  await page.getByRole('button', { name: 'Classify privately' }).click();
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: SESSION_MS });
  const err = await page.locator('#run-error').textContent();
  assert.equal(await page.locator('body').getAttribute('data-state'), 'done', `page error: ${err}`);
  return page.evaluate(
    () => (globalThis as unknown as { piResult: { class: number; logits: number[]; schedule: number[] } }).piResult,
  );
}

const galleryInput = (i: number) => prepareImage(inputSpec(model.plan), PNG.sync.read(Buffer.from(gallery[i]!.png)));

async function cliClassify(i: number, seed?: string) {
  const ch = await connectChannel('127.0.0.1', tcp.port, pinned(await identity('web-server')));
  return runClient(ch, galleryInput(i), { relu: RELU, ...(seed ? { random: seededClientRandomness(seed) } : {}) });
}

const argmax = (v: ArrayLike<number>) => Array.from(v).reduce((b, x, i, a) => (x > a[b]! ? i : b), 0);

test('the page classifies 3 gallery images privately with the OT ReLU: the classes of the Node client and of the reference; screenshot', async () => {
  const page = await openPage();
  try {
    for (let i = 0; i < 3; i++) {
      const got = await classifyGallery(page, i);
      const cli = await cliClassify(i);
      const ref = referenceForward(model, quantize(galleryInput(i), model.plan.fixed.f));
      // the reference's top two logits are far enough apart for the secure class to be determined
      const sorted = Array.from(ref.logits).sort((x, y) => y - x);
      assert.ok(
        sorted[0]! - sorted[1]! > 2 * TOL,
        `image ${i}: top-2 gap ${sorted[0]! - sorted[1]!} of the test model is too small for this check`,
      );
      assert.equal(got.class, argmax(cli.logits), `image ${i}: browser class vs CLI class`);
      assert.equal(got.class, argmax(ref.logits), `image ${i}: browser class vs the plan's fixed-point reference`);
      for (const [who, l] of [
        ['browser', got.logits],
        ['CLI', Array.from(cli.logits)],
      ] as const) {
        const err = Math.max(...l.map((v, k) => Math.abs(v - ref.logits[k]!)));
        assert.ok(err <= TOL, `image ${i}: ${who} logits differ from the reference by ${err}`);
      }
    }
    assert.match((await page.locator('#result-class').textContent()) ?? '', /^Predicted: \S/);
    assert.match((await page.locator('#server-saw').textContent()) ?? '', /never saw the image/);
    assert.match(
      (await page.locator('#cost').textContent()) ?? '',
      /Latency: [\d.]+ s .* sent [\d.]+ MB, received [\d.]+ MB/,
    );
    assert.equal(await page.locator('#progress').getAttribute('value'), '1');
    await page.screenshot({ path: join(OUT, 'classified.png'), fullPage: true });
  } finally {
    await page.close();
  }
});

test('the page asks for an offline mode in its hello (?offline=layer, then the select): the server streams or not', async () => {
  const hello = (t: Transcript) =>
    JSON.parse(new TextDecoder().decode(t.frames[0]!.bytes)) as { protocol: string; offline?: unknown };
  const page = await openPage('?offline=layer');
  try {
    assert.equal(await page.locator('#offline').inputValue(), 'layer');
    transcripts = [];
    const layer = await classifyGallery(page, 0);
    assert.equal(hello(transcripts[0]!).offline, 'layer');
    // one segment per conv/fc layer
    const linear = model.plan.ops.filter((o) => o.op === 'conv' || o.op === 'fc').length;
    assert.equal(layer.schedule.length, linear);
    assert.match((await page.locator('#cost').textContent()) ?? '', new RegExp(`offline work in ${linear} segments`));
    await page.locator('#offline').selectOption('all');
    transcripts = [];
    const all = await classifyGallery(page, 0);
    assert.equal(hello(transcripts[0]!).offline, 'all');
    assert.deepEqual(all.schedule, [0]);
    assert.match((await page.locator('#cost').textContent()) ?? '', /offline work before the image/);
    const ref = referenceForward(model, quantize(galleryInput(0), model.plan.fixed.f));
    for (const r of [layer, all]) {
      assert.equal(r.class, argmax(ref.logits));
      assert.ok(Math.max(...r.logits.map((v, k) => Math.abs(v - ref.logits[k]!))) <= TOL);
    }
    // the server's choice (no wish in the hello), as before
    await page.locator('#offline').selectOption('');
    transcripts = [];
    await classifyGallery(page, 0);
    assert.equal(hello(transcripts[0]!).offline, undefined);
  } finally {
    await page.close();
  }
});

test('bad input: a non-image file, an undecodable image, a non-square image: clear messages, classify stays off', async () => {
  const page = await openPage();
  try {
    const cases: [{ name: string; mimeType: string; buffer: Buffer }, RegExp][] = [
      [
        { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture') },
        /'notes\.txt' is a text\/plain file, not an image/,
      ],
      [
        { name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from('\x89PNG\r\n\x1a\n garbage') },
        /'broken\.png' is not an image this browser can decode/,
      ],
      [
        { name: 'wide.png', mimeType: 'image/png', buffer: PNG.sync.write(new PNG({ width: 60, height: 20 })) },
        /'wide\.png' is 60x20, too far from square/,
      ],
    ];
    for (const [file, re] of cases) {
      await page.setInputFiles('#file', file);
      await page.waitForSelector('body[data-state="input-error"]');
      assert.match((await page.getByRole('alert').first().textContent()) ?? '', re);
      assert.equal(await page.getByRole('button', { name: 'Classify privately' }).isDisabled(), true);
    }
  } finally {
    await page.close();
  }
});

test('a crafted client sending an input share one element short: the server refuses it (MALFORMED), the page says so', async () => {
  const page = await openPage('?craft=short-input');
  try {
    const n = errors.length;
    await page.getByRole('button', { name: /^Test image 1\b/ }).click();
    await page.waitForSelector('body[data-state="ready"]');
    await page.getByRole('button', { name: 'Classify privately' }).click();
    await page.waitForSelector('body[data-state="error"]', { timeout: SESSION_MS });
    assert.match(
      (await page.locator('#run-error').textContent()) ?? '',
      /rejected a message of this client as malformed .* \[MALFORMED\]/,
    );
    const size = model.plan.ops[0]!.size;
    assert.ok(
      errors.slice(n).some((e) => e.includes(`online: input share: expected ${8 * size} bytes, got ${8 * size - 8}`)),
      errors.slice(n).join('\n'),
    );
  } finally {
    await page.close();
  }
});

test("the server's received transcript of a browser session equals a Node client's with the same coins", async () => {
  serverSeed = 'web-transcript-server';
  try {
    transcripts = [];
    const page = await openPage('?seed=web-transcript');
    try {
      await classifyGallery(page, 0);
    } finally {
      await page.close();
    }
    await cliClassify(0, 'web-transcript');
    await cliClassify(0, 'another-seed');
    const [browserView, cliView, otherView] = transcripts.map((t) => t.frames);
    assert.ok(browserView && cliView && otherView && browserView.length > 10);
    assert.equal(transcriptDifference(browserView, cliView), null);
    // the check can fail: other client coins give another transcript
    assert.notEqual(transcriptDifference(browserView, otherView), null);
  } finally {
    serverSeed = null;
  }
});

test("closing the tab mid-session aborts the server's session and releases its state", async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  states = [];
  const page = await openPage();
  await page.getByRole('button', { name: /^Test image 2\b/ }).click();
  await page.waitForSelector('body[data-state="ready"]');
  await page.getByRole('button', { name: 'Classify privately' }).click();
  // wait until the session is in its offline phase on the server
  for (let i = 0; i < 600 && !pool.sessions().some((s) => s.phase === 'offline'); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.equal(pool.sessions().length, 1);
  await page.close();
  for (let i = 0; i < 200 && (pool.sessions().length || web.connections); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.equal(pool.sessions().length, 0, 'live sessions after the tab closed');
  assert.equal(web.connections, 0, 'open WebSocket connections after the tab closed');
  assert.ok(
    errors.some((e) => /peer closed the connection/.test(e)),
    errors.join('\n'),
  );
  for (let i = 0; i < 20 && states.some((w) => w.deref()); i++) {
    await new Promise((r) => setTimeout(r, 50));
    gc();
  }
  assert.equal(states.filter((w) => w.deref()).length, 0, "the aborted session's state is garbage collected");
});
