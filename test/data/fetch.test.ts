import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { zipSync } from 'fflate';
import { fetchDataset, SOURCES, type FetchLike, type RemoteFile } from '../../src/data/fetch.js';
import { readCifar10 } from '../../src/data/cifar.js';
import { readTinyImageNet } from '../../src/data/tinyimagenet.js';
import { readMnistLike } from '../../src/data/idx.js';
import { tempDir, writeCifar10, writeIdx, writeTinyImageNet } from './fixtures.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

/** A fetch serving `files` by URL and counting requests. */
function fakeFetch(files: Record<string, Uint8Array>): FetchLike & { calls: string[] } {
  const calls: string[] = [];
  const f = async (url: string) => {
    calls.push(url);
    const b = files[url];
    return b
      ? new Response(b, { headers: { 'content-length': String(b.length) } })
      : new Response('no', { status: 404, statusText: 'Not Found' });
  };
  return Object.assign(f, { calls });
}

/** All files of a folder tree as { relative path: bytes }, for zipping. */
function tree(dir: string, prefix = ''): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) Object.assign(out, tree(dir, rel));
    else out[rel] = readFileSync(join(dir, rel));
  }
  return out;
}

test('official sources carry the published checksums', () => {
  assert.equal(SOURCES.cifar10[0]!.md5, 'c32a1d4ab5d03f1284b67883e8d87530');
  assert.equal(SOURCES.cifar100[0]!.md5, '03b5dce01913d631647c71ecec9e9cb8');
  assert.equal(SOURCES['tiny-imagenet'][0]!.md5, '90528d7ca1a48142e341f4ef8d21d0de');
  assert.deepEqual(
    SOURCES['fashion-mnist'].map((f) => f.md5),
    [
      '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
      '25c81989df183df01b3e8a0aad5dffbe',
      'bef4ecab320f06d8554ea6380940ec79',
      'bb300cfdad3c16e7a12a480ee83cd310',
    ],
  );
  assert.ok(SOURCES.cifar10[0]!.url.endsWith('/cifar-10-binary.tar.gz'));
});

test('tar.gz: download, verify, extract, read; a second fetch downloads and extracts nothing', async () => {
  const src = tempDir('tgz-src');
  writeCifar10(src, 2);
  const archive = join(src, 'c.tar.gz');
  await tar.c({ gzip: true, file: archive, cwd: src }, ['cifar-10-batches-bin']);
  const bytes = readFileSync(archive);
  const url = 'https://example.invalid/cifar-10-binary.tar.gz';
  const sources: RemoteFile[] = [{ url, file: 'cifar-10-binary.tar.gz', md5: md5(bytes), extract: 'tar.gz' }];
  const dir = join(tempDir('tgz'), 'cifar10');
  const f = fakeFetch({ [url]: bytes });
  const r = await fetchDataset('cifar10', { dir, sources, fetch: f, progress: false });
  assert.deepEqual(r, { dir, files: [join(dir, 'cifar-10-binary.tar.gz')] });
  assert.equal(readCifar10(dir, 'train').n, 10);
  const log: string[] = [];
  await fetchDataset('cifar10', { dir, sources, fetch: f, log: (l) => log.push(l) });
  assert.equal(f.calls.length, 1);
  assert.ok(log.some((l) => l.includes('md5 ok')) && log.some((l) => l.includes('already extracted')), log.join('\n'));
  assert.deepEqual(
    readdirSync(dir).filter((e) => e.includes('.part') || e.startsWith('.extract')),
    [],
  );
  rmSync(src, { recursive: true });
  rmSync(dir, { recursive: true });
});

test('zip (TinyImageNet layout) and gz (Fashion-MNIST files) are verified and extracted', async () => {
  const src = tempDir('zip-src');
  writeTinyImageNet(src);
  const zip = zipSync(tree(src));
  writeIdx(join(src, 'fm'), true, 6, 2);
  const gzFiles = readdirSync(join(src, 'fm')).sort();
  const serve: Record<string, Uint8Array> = { 'https://x.invalid/tiny.zip': zip };
  const fmSources: RemoteFile[] = gzFiles.map((file) => {
    const b = readFileSync(join(src, 'fm', file));
    serve[`https://x.invalid/${file}`] = b;
    return { url: `https://x.invalid/${file}`, file, md5: md5(b), extract: 'gz' };
  });
  const f = fakeFetch(serve);
  const root = tempDir('zip');
  await fetchDataset('tiny-imagenet', {
    dir: join(root, 'tin'),
    fetch: f,
    sources: [{ url: 'https://x.invalid/tiny.zip', file: 'tiny-imagenet-200.zip', md5: md5(zip), extract: 'zip' }],
  });
  const tin = readTinyImageNet(join(root, 'tin'), 'test');
  assert.deepEqual([...tin.labels], [2, 0, 1, 0]);
  await fetchDataset('fashion-mnist', { dir: join(root, 'fm'), fetch: f, sources: fmSources });
  assert.ok(existsSync(join(root, 'fm', 'train-images-idx3-ubyte')));
  const fm = readMnistLike(join(root, 'fm'), 'train', 'fashion-mnist');
  assert.equal(fm.source, join(root, 'fm', 'train-images-idx3-ubyte')); // the extracted raw file
  assert.equal(fm.n, 6);
  rmSync(src, { recursive: true });
  rmSync(root, { recursive: true });
});

test('checksum mismatch: clear error, nothing left behind; HTTP errors and offline named too', async () => {
  const dir = tempDir('bad');
  const url = 'https://example.invalid/cifar-100-binary.tar.gz';
  const f = fakeFetch({ [url]: new Uint8Array([1, 2, 3]) });
  const sources: RemoteFile[] = [
    { url, file: 'cifar-100-binary.tar.gz', md5: SOURCES.cifar100[0]!.md5, extract: 'tar.gz' },
  ];
  await assert.rejects(fetchDataset('cifar100', { dir, sources, fetch: f }), (e: Error) => {
    assert.match(e.message, /checksum mismatch for https:\/\/example\.invalid\/cifar-100-binary\.tar\.gz/);
    assert.ok(
      e.message.includes(md5(new Uint8Array([1, 2, 3]))) && e.message.includes('03b5dce01913d631647c71ecec9e9cb8'),
    );
    return true;
  });
  assert.deepEqual(readdirSync(dir), []);
  await assert.rejects(
    fetchDataset('cifar100', { dir, sources: [{ ...sources[0]!, url: 'https://example.invalid/missing' }], fetch: f }),
    /HTTP 404 Not Found/,
  );
  const offline: FetchLike = async () => {
    throw new TypeError('fetch failed', {
      cause: Object.assign(new Error('getaddrinfo ENOTFOUND www.cs.toronto.edu'), { code: 'ENOTFOUND' }),
    });
  };
  await assert.rejects(fetchDataset('cifar10', { dir, fetch: offline }), (e: Error) => {
    assert.ok(e.message.includes('cannot download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'), e.message);
    assert.ok(
      e.message.includes('network unreachable (ENOTFOUND') && e.message.includes(join(dir, 'cifar-10-binary.tar.gz')),
      e.message,
    );
    return true;
  });
  rmSync(dir, { recursive: true });
});

test('a file placed by hand is used without network; corrupt and path-escaping archives are refused', async () => {
  const dir = tempDir('manual');
  const gz = gzipSync(Buffer.from('hello'));
  writeFileSync(join(dir, 'a.gz'), gz);
  const noNet: FetchLike = async () => {
    throw new Error('must not be called');
  };
  await fetchDataset('fashion-mnist', {
    dir,
    fetch: noNet,
    sources: [{ url: 'https://x.invalid/a.gz', file: 'a.gz', md5: md5(gz), extract: 'gz' }],
  });
  assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'hello');
  const junk = new Uint8Array(300).fill(7);
  writeFileSync(join(dir, 'j.tar.gz'), junk);
  await assert.rejects(
    fetchDataset('cifar10', {
      dir,
      fetch: noNet,
      sources: [{ url: 'https://x.invalid/j', file: 'j.tar.gz', md5: md5(junk), extract: 'tar.gz' }],
    }),
    (e: Error) => e.message.includes(join(dir, 'j.tar.gz')) && e.message.includes('cannot extract tar.gz'),
  );
  const evil = zipSync({ '../evil.txt': new Uint8Array([1]) });
  writeFileSync(join(dir, 'e.zip'), evil);
  await assert.rejects(
    fetchDataset('tiny-imagenet', {
      dir,
      fetch: noNet,
      sources: [{ url: 'https://x.invalid/e', file: 'e.zip', md5: md5(evil), extract: 'zip' }],
    }),
    /e\.zip: archive entry '\.\.\/evil\.txt' points outside/,
  );
  assert.ok(!existsSync(join(dir, '..', 'evil.txt')));
  assert.deepEqual(
    readdirSync(dir).filter((e) => e.startsWith('.extract')),
    [],
  );
  rmSync(dir, { recursive: true });
});
