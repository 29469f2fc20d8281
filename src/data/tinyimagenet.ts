import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeDataset, sharedBytes, sharedInt32, type Dataset } from './dataset.js';
import { decodeImageFile, rgbaToChw } from './decode.js';
import { isDir, readLines, requireDir } from './files.js';

/** `dir` itself or the `tiny-imagenet-200` folder the official zip unpacks to. */
function locate(dir: string): string {
  if (existsSync(join(dir, 'wnids.txt'))) return dir;
  if (existsSync(join(dir, 'tiny-imagenet-200', 'wnids.txt'))) return join(dir, 'tiny-imagenet-200');
  if (!isDir(dir)) throw new Error(`${dir}: dataset folder not found`);
  throw new Error(
    `${join(dir, 'wnids.txt')}: TinyImageNet class list not found (nor in ${join(dir, 'tiny-imagenet-200')})`,
  );
}

/**
 * TinyImageNet-200: `train/<wnid>/images/*.JPEG` (train) or `val/images` labelled by `val/val_annotations.txt`
 * (test). Classes are the wnids of `wnids.txt`, sorted (as a class-folder reader would order them).
 * Grayscale JPEGs are expanded to RGB; every image must have the size of the first.
 */
export function readTinyImageNet(dir: string, split: 'train' | 'test'): Dataset {
  const root = locate(dir);
  const wnidsFile = join(root, 'wnids.txt');
  const wnids = [...new Set(readLines(wnidsFile, 'TinyImageNet class list'))].sort();
  if (!wnids.length) throw new Error(`${wnidsFile}: no class ids`);
  const classOf = new Map(wnids.map((w, i) => [w, i]));

  const items: { path: string; label: number }[] = [];
  if (split === 'train') {
    requireDir(join(root, 'train'), 'TinyImageNet train');
    wnids.forEach((wnid, label) => {
      const d = join(root, 'train', wnid, 'images');
      requireDir(d, `TinyImageNet train images of class ${wnid}`);
      const files = readdirSync(d)
        .filter((f) => /\.jpe?g$/i.test(f))
        .sort();
      if (!files.length) throw new Error(`${d}: no JPEG images for class ${wnid}`);
      for (const f of files) items.push({ path: join(d, f), label });
    });
  } else {
    const ann = join(root, 'val', 'val_annotations.txt');
    requireDir(join(root, 'val', 'images'), 'TinyImageNet val images');
    readLines(ann, 'TinyImageNet val annotations').forEach((line, i) => {
      const [file, wnid] = line.split(/\s+/);
      const label = wnid === undefined ? undefined : classOf.get(wnid);
      if (!file || label === undefined)
        throw new Error(
          `${ann}: line ${i + 1}: ${wnid === undefined ? 'expected "<file> <wnid> ..."' : `class ${wnid} is not in ${wnidsFile}`}`,
        );
      items.push({ path: join(root, 'val', 'images', file), label });
    });
  }

  const words = join(root, 'words.txt');
  let classNames: string[] = wnids;
  if (existsSync(words)) {
    const byId = new Map(
      readLines(words, 'TinyImageNet class names').map((l) => [l.split('\t')[0]!, l.split('\t')[1] ?? '']),
    );
    classNames = wnids.map((w) => byId.get(w) || w);
  }

  const first = decodeImageFile(items[0]!.path);
  const { width: w, height: h } = first;
  const per = 3 * h * w;
  const images = sharedBytes(items.length * per);
  const labels = sharedInt32(items.length);
  items.forEach((it, i) => {
    const img = i === 0 ? first : decodeImageFile(it.path);
    if (img.width !== w || img.height !== h)
      throw new Error(`${it.path}: image is ${img.width}x${img.height}, expected ${w}x${h} like ${items[0]!.path}`);
    rgbaToChw(img, 3, images, i * per);
    labels[i] = it.label;
  });
  return makeDataset({
    name: `tiny-imagenet/${split}`,
    images,
    labels,
    n: items.length,
    c: 3,
    h,
    w,
    numClasses: wnids.length,
    classNames,
    source: root,
  });
}
