// The page: choose an image (file or gallery), see the model's input, classify it privately, see the class, the
// scores, the progress by protocol phase, the latency and bytes, and what the server saw.
import { ERROR_CODES, PiError, type ErrorCode } from '../pi/transport/errors.js';
import { prepareImage, type InputSpec, type RgbaImage } from '../pi/image.js';
import type { ClientResult } from '../pi/protocol.js';
import type { WebModelInfo } from '../pi/web/info.js';
import { PAGE_OFFLINE, queryPrivately, type PageOffline, type QueryProgress } from './session.js';
import { drawInput, InputError, pixelsOf } from './picture.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
/**
 * Test-only switches, honoured only when the server runs with test hooks (a link with ?seed= must not make a real
 * user's masks predictable) and named on the page when set: fixed client randomness, a crafted short input share.
 */
let seed: string | undefined;
let shortInput = false;

let info: WebModelInfo;
let spec: InputSpec;
let chosen: RgbaImage | null = null;
let running = false;

function setState(s: 'ready' | 'running' | 'done' | 'error' | 'input-error'): void {
  document.body.dataset.state = s;
}

function show(id: string, text: string | null): void {
  const e = $(id);
  e.textContent = text ?? '';
  e.hidden = text === null;
}

const CODE_TEXT: Partial<Record<ErrorCode, string>> = {
  MALFORMED:
    'The server rejected a message of this client as malformed (for example an input of the wrong size for the model).',
  LIMIT: 'A message exceeded the size limit of the protocol.',
  PROTOCOL: 'The server does not run the protocol or options this page asked for.',
  TIMEOUT: 'The session took longer than its deadline.',
  BUSY: 'The server is busy with other sessions; try again in a moment.',
  ABORTED: 'The session was cut off (the server left or the connection dropped).',
};

function errorText(e: unknown): string {
  if (e instanceof PiError) return `${CODE_TEXT[e.code] ?? ERROR_CODES[e.code]} [${e.code}]`;
  return e instanceof Error ? e.message : String(e);
}

const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
const sec = (ms: number) => `${(ms / 1e3).toFixed(2)} s`;

function serverSaw(): string {
  const relu =
    info.relu === 'gc'
      ? 'for the ReLUs, OT-extension messages on its random masks and the colour bits of garbled outputs it cannot decode'
      : 'for the ReLUs, oblivious-transfer and comparison messages on values masked by random shares';
  const prep =
    info.preprocess === 'he'
      ? "the client's homomorphic-encryption public key and ciphertexts of random masks (one per linear layer, drawn independently of the image)"
      : 'nothing of the preprocessing (a dealer handled it)';
  return (
    `What the server saw: ${prep}; ${relu}; and, online, the image minus a uniformly random mask (8 bytes per input value in Z_2^64). ` +
    'It never saw the image, any activation or the result: the logits were added up from shares in this page.'
  );
}

/** The offline mode chosen on the page (the select; ?offline=all|layer preselects it); null: the server's choice. */
function offlineChoice(): PageOffline | null {
  const v = $<HTMLSelectElement>('offline').value;
  return (PAGE_OFFLINE as readonly string[]).includes(v) ? (v as PageOffline) : null;
}

function showResult(r: ClientResult): void {
  const names = info.input.classNames ?? Array.from(r.logits, (_, i) => `class ${i}`);
  const mx = Math.max(...r.logits),
    ex = Array.from(r.logits, (v) => Math.exp(v - mx)),
    z = ex.reduce((a, b) => a + b, 0);
  const p = ex.map((v) => v / z);
  const top = p.indexOf(Math.max(...p));
  show('result-class', `Predicted: ${names[top]} (${(100 * p[top]!).toFixed(1)}%)`);
  const body = $('scores').querySelector('tbody')!;
  body.replaceChildren(
    ...p.map((v, i) => {
      const tr = document.createElement('tr');
      if (i === top) tr.className = 'top';
      const a = document.createElement('td'),
        b = document.createElement('td'),
        c = document.createElement('td'),
        bar = document.createElement('span');
      a.textContent = names[i]!;
      b.textContent = `${(100 * v).toFixed(1)}%`;
      c.className = 'bar';
      bar.style.width = `${(100 * v).toFixed(1)}%`;
      c.append(bar);
      tr.append(a, b, c);
      return tr;
    }),
  );
  const ph = r.client.phases;
  const sent = ph.setup.bytesSent + ph.offline.bytesSent + ph.online.bytesSent,
    recv = ph.setup.bytesRecv + ph.offline.bytesRecv + ph.online.bytesRecv;
  const segs = r.schedule.length,
    mode =
      segs > 1
        ? `offline work in ${segs} segments, interleaved with the online phase`
        : 'offline work before the image';
  show(
    'cost',
    `Latency: ${sec(ph.setup.ms + ph.offline.ms + ph.online.ms)} (setup ${sec(ph.setup.ms)}, offline ${sec(ph.offline.ms)}, online ${sec(ph.online.ms)}; ${mode}); ` +
      `sent ${mb(sent)}, received ${mb(recv)} (online: ${mb(ph.online.bytesSent)} sent, ${mb(ph.online.bytesRecv)} received); ` +
      `protocol state held in this page at peak: ${mb(r.client.memory.peakHeldBytes)}.`,
  );
  show('server-saw', serverSaw());
  $('result').hidden = false;
  (window as unknown as { piResult: unknown }).piResult = {
    class: top,
    name: names[top],
    logits: Array.from(r.logits),
    phases: ph,
    memory: r.client.memory,
    schedule: r.schedule,
  };
}

function progress(p: QueryProgress): void {
  const bar = $<HTMLProgressElement>('progress');
  bar.max = Math.max(1, p.total);
  bar.value = p.done;
  const phase =
    p.phase === 'connecting'
      ? 'Connecting'
      : p.phase === 'done'
        ? 'Done'
        : `${p.phase[0]!.toUpperCase()}${p.phase.slice(1)} phase`;
  $('progress-label').textContent = p.total
    ? `${phase}: ${p.step} (${p.done}/${p.total} steps)`
    : `${phase}: ${p.step}`;
}

async function choose(blob: Blob, what: string): Promise<void> {
  show('input-error', null);
  show('run-error', null);
  $('result').hidden = true;
  try {
    const side = info.input.padFrom ?? info.input.shape[1]!;
    chosen = await pixelsOf(blob, what, side);
    const x = prepareImage(spec, chosen);
    const pv = $<HTMLCanvasElement>('preview');
    drawInput(pv, x, spec.shape, spec.mean, spec.std);
    pv.setAttribute('aria-label', `The model's input: ${what} as ${spec.shape.join('x')} values`);
    show(
      'preview-note',
      `${what}, as the model sees it: ${side}x${side}${side !== spec.shape[1] ? `, padded to ${spec.shape[1]}x${spec.shape[2]}` : ''}, ${spec.shape[0] === 1 ? 'grey' : 'colour'}.`,
    );
    $<HTMLButtonElement>('classify').disabled = running;
    setState('ready');
  } catch (e) {
    chosen = null;
    $<HTMLButtonElement>('classify').disabled = true;
    show('input-error', e instanceof InputError ? e.message : `Cannot use ${what}: ${errorText(e)}`);
    setState('input-error');
  }
}

async function classify(): Promise<void> {
  if (!chosen || running) return;
  running = true;
  $<HTMLButtonElement>('classify').disabled = true;
  show('run-error', null);
  $('result').hidden = true;
  setState('running');
  try {
    const r = await queryPrivately(chosen, {
      url: `wss://${location.host}/pi`,
      preprocess: info.preprocess,
      relu: info.relu,
      ...(offlineChoice() ? { offline: offlineChoice()! } : {}),
      onProgress: progress,
      ...(seed !== undefined ? { seed } : {}),
      ...(shortInput ? { shortInput } : {}),
    });
    progress({ phase: 'done', done: 1, total: 1, step: 'result' });
    showResult(r);
    setState('done');
  } catch (e) {
    show('run-error', `Private inference failed: ${errorText(e)}`);
    $('progress-label').textContent = 'Stopped';
    setState('error');
  } finally {
    running = false;
    $<HTMLButtonElement>('classify').disabled = !chosen;
  }
}

async function main(): Promise<void> {
  const res = await fetch('/model.json');
  if (!res.ok) throw new Error(`the server did not describe its model (HTTP ${res.status})`);
  info = (await res.json()) as WebModelInfo;
  spec = { shape: info.input.shape, mean: info.input.mean, std: info.input.std };
  if (info.testHooks) {
    seed = params.get('seed') ?? undefined;
    shortInput = params.get('craft') === 'short-input';
  }
  const off = params.get('offline');
  if (off !== null && (PAGE_OFFLINE as readonly string[]).includes(off)) $<HTMLSelectElement>('offline').value = off;
  $('model-line').textContent =
    `Model: ${info.arch}, ${info.relus.toLocaleString('en-US')} ReLUs (${info.relu} ReLU protocol, ${info.preprocess} preprocessing), ` +
    `input ${info.input.shape.join('x')}, ${info.classes} classes${info.input.dataset ? ` (${info.input.dataset})` : ''}.`;
  if (seed !== undefined || shortInput)
    show(
      'test-mode',
      `Test mode: ${[seed !== undefined ? `fixed client randomness (seed '${seed}'), NOT private` : '', shortInput ? 'crafted short input share' : ''].filter(Boolean).join('; ')}.`,
    );
  const gallery = $('gallery');
  const names = info.input.classNames;
  if (!info.gallery.length) $('gallery-box').hidden = true;
  info.gallery.forEach((g, i) => {
    const item = document.createElement('div'),
      b = document.createElement('button'),
      img = document.createElement('img');
    item.setAttribute('role', 'listitem');
    b.type = 'button';
    b.setAttribute('aria-pressed', 'false');
    const label = `Test image ${i + 1}${names ? ` (labelled ${names[g.label]})` : ''}`;
    b.setAttribute('aria-label', label);
    img.src = g.url;
    img.alt = '';
    b.append(img);
    b.addEventListener('click', async () => {
      for (const o of gallery.querySelectorAll('button')) o.setAttribute('aria-pressed', String(o === b));
      const r = await fetch(g.url);
      await choose(await r.blob(), label);
    });
    item.append(b);
    gallery.append(item);
  });
  $<HTMLInputElement>('file').addEventListener('change', (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) {
      for (const o of gallery.querySelectorAll('button')) o.setAttribute('aria-pressed', 'false');
      void choose(f, `'${f.name}'`);
    }
  });
  $('classify').addEventListener('click', () => void classify());
  setState('ready');
}

main().catch((e) => {
  const off = params.get('offline');
  if (off !== null && (PAGE_OFFLINE as readonly string[]).includes(off)) $<HTMLSelectElement>('offline').value = off;
  $('model-line').textContent = `Cannot start: ${errorText(e)}`;
  setState('error');
});
