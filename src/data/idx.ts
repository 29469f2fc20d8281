import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeDataset, sharedBytes, sharedInt32, type Dataset } from './dataset.js';
import { readMaybeGz } from './files.js';

export const IDX_IMAGES_MAGIC = 2051;
export const IDX_LABELS_MAGIC = 2049;

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

function u32be(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

/** Parses an IDX file of unsigned bytes with the given magic; `bytes` is the decompressed content. */
export function parseIdx(path: string, bytes: Uint8Array, magic: number): { dims: number[]; data: Uint8Array } {
  const ndims = magic & 0xff;
  const header = 4 + 4 * ndims;
  if (bytes.length < 4)
    throw new Error(`${path}: truncated IDX file: ${bytes.length} bytes, the magic number needs 4 (byte offset 0)`);
  const got = u32be(bytes, 0);
  if (got !== magic)
    throw new Error(
      `${path}: wrong IDX magic number ${got} (0x${got.toString(16).padStart(8, '0')}) at byte offset 0, expected ${magic}`,
    );
  if (bytes.length < header)
    throw new Error(
      `${path}: truncated IDX header: ${bytes.length} bytes, header needs ${header} (byte offset ${bytes.length})`,
    );
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(u32be(bytes, 4 + 4 * i));
  const need = dims.reduce((a, b) => a * b, 1);
  const have = bytes.length - header;
  if (have < need) {
    const per = need / (dims[0] || 1);
    const item = per ? Math.floor(have / per) : 0;
    throw new Error(
      `${path}: truncated IDX data: header declares ${dims.join('x')} (${need} bytes from offset ${header}) but the data ends at byte offset ${bytes.length}` +
        ` (item ${item} of ${dims[0]} incomplete)`,
    );
  }
  if (have > need)
    throw new Error(
      `${path}: IDX file has ${have - need} unexpected trailing bytes after byte offset ${header + need}`,
    );
  return { dims, data: bytes.subarray(header) };
}

/** `train` or `t10k` image/label files in dir: raw or .gz, `-idx3-ubyte` or `.idx3-ubyte` spellings. */
export function findIdxFiles(dir: string, prefix: 'train' | 't10k'): { images: string; labels: string } {
  const find = (kind: 'images' | 'labels', nd: 1 | 3): string => {
    const names = [`${prefix}-${kind}-idx${nd}-ubyte`, `${prefix}-${kind}.idx${nd}-ubyte`];
    for (const base of names)
      for (const ext of ['', '.gz']) if (existsSync(join(dir, base + ext))) return join(dir, base + ext);
    throw new Error(`${join(dir, names[0]!)}(.gz): IDX ${kind} file not found`);
  };
  return { images: find('images', 3), labels: find('labels', 1) };
}

/** Reads an MNIST-style IDX image/label pair (gzipped or raw). */
export function readIdxPair(
  imagesPath: string,
  labelsPath: string,
  o: { name: string; numClasses: number; classNames?: string[] },
): Dataset {
  const im = parseIdx(imagesPath, readMaybeGz(imagesPath, 'IDX images file'), IDX_IMAGES_MAGIC);
  const lb = parseIdx(labelsPath, readMaybeGz(labelsPath, 'IDX labels file'), IDX_LABELS_MAGIC);
  const [n, h, w] = im.dims as [number, number, number];
  if (lb.dims[0] !== n) throw new Error(`${labelsPath}: ${lb.dims[0]} labels but ${imagesPath} has ${n} images`);
  const labels = sharedInt32(n);
  for (let i = 0; i < n; i++) {
    const y = lb.data[i]!;
    if (y >= o.numClasses)
      throw new Error(`${labelsPath}: label ${y} at byte offset ${8 + i} is outside [0, ${o.numClasses})`);
    labels[i] = y;
  }
  const images = sharedBytes(n * h * w);
  images.set(im.data);
  return makeDataset({
    name: o.name,
    images,
    labels,
    n,
    c: 1,
    h,
    w,
    numClasses: o.numClasses,
    classNames: o.classNames,
    source: imagesPath,
  });
}

/** MNIST or Fashion-MNIST split from a folder of IDX files. */
export function readMnistLike(dir: string, split: 'train' | 'test', kind: 'mnist' | 'fashion-mnist'): Dataset {
  const f = findIdxFiles(dir, split === 'train' ? 'train' : 't10k');
  return readIdxPair(f.images, f.labels, {
    name: `${kind}/${split}`,
    numClasses: 10,
    classNames: kind === 'mnist' ? MNIST_CLASSES : FASHION_MNIST_CLASSES,
  });
}
