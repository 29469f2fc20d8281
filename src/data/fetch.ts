import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { gunzipSync } from 'node:zlib';
import cliProgress from 'cli-progress';
import { unzipSync } from 'fflate';
import * as tar from 'tar';
import { writeFileAtomic } from '../util/fs.js';
import { dataRoot } from './registry.js';

export const FETCHABLE = ['cifar10', 'cifar100', 'fashion-mnist', 'tiny-imagenet'] as const;
export type FetchableName = (typeof FETCHABLE)[number];

export interface RemoteFile {
  url: string;
  /** Name it is saved under in the dataset folder. */
  file: string;
  md5: string;
  extract: 'tar.gz' | 'zip' | 'gz';
}

const FASHION = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/';

/** One archive, saved under its URL's file name and extracted by its extension. */
const archive = (url: string, md5: string): RemoteFile[] => [
  { url, file: url.slice(url.lastIndexOf('/') + 1), md5, extract: url.endsWith('.zip') ? 'zip' : 'tar.gz' },
];

/** Official sources and their published MD5s. */
export const SOURCES: Record<FetchableName, RemoteFile[]> = {
  cifar10: archive('https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz', 'c32a1d4ab5d03f1284b67883e8d87530'),
  cifar100: archive('https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz', '03b5dce01913d631647c71ecec9e9cb8'),
  'fashion-mnist': [
    { file: 'train-images-idx3-ubyte.gz', md5: '8d4fb7e6c68d591d4c3dfef9ec88bf0d' },
    { file: 'train-labels-idx1-ubyte.gz', md5: '25c81989df183df01b3e8a0aad5dffbe' },
    { file: 't10k-images-idx3-ubyte.gz', md5: 'bef4ecab320f06d8554ea6380940ec79' },
    { file: 't10k-labels-idx1-ubyte.gz', md5: 'bb300cfdad3c16e7a12a480ee83cd310' },
  ].map((f) => ({ ...f, url: FASHION + f.file, extract: 'gz' as const })),
  'tiny-imagenet': archive('http://cs231n.stanford.edu/tiny-imagenet-200.zip', '90528d7ca1a48142e341f4ef8d21d0de'),
};

/** The subset of `fetch` used here, so tests can inject a local one. */
export type FetchLike = (url: string) => Promise<Response>;

export interface FetchOptions {
  /** Dataset folder; default `<dataRoot()>/<name>`. */
  dir?: string;
  fetch?: FetchLike;
  /** Replaces the official source list (tests). */
  sources?: RemoteFile[];
  log?: (line: string) => void;
  /** Progress bar on a TTY stderr; default true. */
  progress?: boolean;
}

export function isFetchable(s: string): s is FetchableName {
  return (FETCHABLE as readonly string[]).includes(s);
}

export async function md5File(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const NETWORK_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ETIMEDOUT',
  'ECONNRESET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function describeFetchError(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code;
  if (code && NETWORK_CODES.has(code)) return `network unreachable (${code}: ${cause?.message ?? ''})`;
  return cause?.message ? `${(e as Error).message}: ${cause.message}` : (e as Error).message;
}

/**
 * Downloads `url` to `dest`, verifying its MD5 before the file appears (temp file + fsync + rename). A mismatch
 * deletes the download and throws.
 */
export async function downloadFile(
  url: string,
  dest: string,
  md5: string,
  o: { fetch?: FetchLike; progress?: boolean } = {},
): Promise<void> {
  const fetchImpl = o.fetch ?? ((u: string) => fetch(u));
  let res: Response;
  try {
    res = await fetchImpl(url);
  } catch (e) {
    throw new Error(
      `cannot download ${url}: ${describeFetchError(e)}. Offline? Put the file at ${dest} by other means (it is verified and ` +
        `extracted on the next 'data fetch'), or point --data at an extracted copy.`,
    );
  }
  if (!res.ok || !res.body) throw new Error(`cannot download ${url}: HTTP ${res.status} ${res.statusText}`);
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = `${dest}.part-${process.pid}`;
  const total = Number(res.headers.get('content-length')) || 0;
  const bar =
    o.progress !== false && process.stderr.isTTY && total > 0
      ? new cliProgress.SingleBar(
          {
            format: `${basename(dest)} [{bar}] {percentage}% {value}/{total} bytes | ETA {eta_formatted}`,
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  bar?.start(total, 0);
  const h = createHash('md5');
  const fh = await open(tmp, 'w');
  let got = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      h.update(chunk);
      await fh.write(chunk);
      got += chunk.length;
      bar?.update(got);
    }
    await fh.sync();
  } catch (e) {
    await fh.close();
    rmSync(tmp, { force: true });
    throw new Error(`cannot download ${url}: transfer failed after ${got} bytes: ${describeFetchError(e)}`);
  } finally {
    bar?.stop();
  }
  await fh.close();
  const digest = h.digest('hex');
  if (digest !== md5) {
    rmSync(tmp, { force: true });
    throw new Error(`checksum mismatch for ${url}: md5 ${digest}, expected ${md5} (${got} bytes, download discarded)`);
  }
  renameSync(tmp, dest);
}

/** A zip entry name that stays inside the extraction folder. */
function safeEntry(archive: string, name: string): string {
  const n = normalize(name);
  if (isAbsolute(n) || n === '..' || n.startsWith(`..${sep}`))
    throw new Error(`${archive}: archive entry '${name}' points outside the extraction folder`);
  return n;
}

/** Extracts `archive` into `into` (which must exist and be empty). */
export async function extractArchive(archive: string, kind: RemoteFile['extract'], into: string): Promise<void> {
  if (kind === 'tar.gz') {
    try {
      await tar.x({ file: archive, cwd: into, strict: true });
    } catch (e) {
      throw new Error(`${archive}: cannot extract tar.gz archive (${(e as Error).message})`);
    }
  } else if (kind === 'zip') {
    let entries: Record<string, Uint8Array>;
    try {
      entries = unzipSync(readFileSync(archive));
    } catch (e) {
      throw new Error(`${archive}: corrupt zip archive (${(e as Error).message})`);
    }
    for (const [name, data] of Object.entries(entries)) {
      const rel = safeEntry(archive, name);
      const out = join(into, rel);
      if (name.endsWith('/')) mkdirSync(out, { recursive: true });
      else {
        mkdirSync(dirname(out), { recursive: true });
        writeFileSync(out, data);
      }
    }
  } else {
    let data: Uint8Array;
    try {
      data = gunzipSync(readFileSync(archive));
    } catch (e) {
      throw new Error(`${archive}: corrupt gzip file (${(e as Error).message})`);
    }
    writeFileSync(join(into, basename(archive).replace(/\.gz$/, '')), data);
  }
}

/**
 * Downloads (unless a file with the right MD5 is already there), verifies and extracts a dataset into its folder.
 * Extraction goes to a staging folder whose entries are renamed into place, then a marker records it, so an
 * interrupted fetch never leaves a half-extracted dataset that looks complete.
 */
export async function fetchDataset(
  name: FetchableName,
  o: FetchOptions = {},
): Promise<{ dir: string; files: string[] }> {
  const dir = o.dir ?? join(dataRoot(), name);
  const log = o.log ?? (() => {});
  const sources = o.sources ?? SOURCES[name];
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const src of sources) {
    const dest = join(dir, src.file);
    if (existsSync(dest) && (await md5File(dest)) === src.md5) log(`${dest}: present, md5 ok`);
    else {
      log(`downloading ${src.url}`);
      await downloadFile(src.url, dest, src.md5, o);
      log(`${dest}: md5 ok`);
    }
    const marker = join(dir, `.${src.file}.extracted`);
    if (existsSync(marker) && readFileSync(marker, 'utf8').trim() === src.md5) {
      log(`${dest}: already extracted`);
    } else {
      const staging = join(dir, `.extract-${process.pid}-${Date.now()}`);
      mkdirSync(staging);
      try {
        await extractArchive(dest, src.extract, staging);
        for (const entry of readdirSync(staging)) {
          rmSync(join(dir, entry), { recursive: true, force: true });
          renameSync(join(staging, entry), join(dir, entry));
        }
      } finally {
        rmSync(staging, { recursive: true, force: true });
      }
      writeFileAtomic(marker, `${src.md5}\n`);
      log(`${dest}: extracted into ${dir}`);
    }
    files.push(dest);
  }
  return { dir, files };
}
