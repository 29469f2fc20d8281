import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { readBytes } from './files.js';

export interface Rgba {
  width: number;
  height: number;
  /** width*height*4 bytes, RGBA interleaved (grayscale inputs come back with R=G=B). */
  data: Uint8Array;
}

/** Decodes a PNG or JPEG file (sniffed from its signature, not its name); errors name the file. */
export function decodeImageFile(path: string): Rgba {
  const b = readBytes(path, 'image file');
  const isPng = b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
  const isJpeg = b.length >= 2 && b[0] === 0xff && b[1] === 0xd8;
  try {
    if (isPng) {
      const p = PNG.sync.read(Buffer.from(b.buffer, b.byteOffset, b.length));
      return { width: p.width, height: p.height, data: p.data };
    }
    if (isJpeg) {
      const j = jpeg.decode(b, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
      return { width: j.width, height: j.height, data: j.data };
    }
  } catch (e) {
    throw new Error(`${path}: corrupt ${isPng ? 'PNG' : 'JPEG'} image (${(e as Error).message})`);
  }
  throw new Error(`${path}: not a PNG or JPEG image (first bytes ${Buffer.from(b.subarray(0, 4)).toString('hex')})`);
}

/** Writes an RGBA image into `out` as CHW planar with `c` = 1 (red plane, for grayscale) or 3 channels at image offset `off`. */
export function rgbaToChw(img: Rgba, c: 1 | 3, out: Uint8Array, off: number): void {
  const hw = img.width * img.height;
  const d = img.data;
  for (let ch = 0; ch < c; ch++) {
    const base = off + ch * hw;
    for (let p = 0, q = ch; p < hw; p++, q += 4) out[base + p] = d[q]!;
  }
}

/** True when every pixel has R = G = B. */
export function isGray(img: Rgba): boolean {
  const d = img.data;
  for (let q = 0; q < d.length; q += 4) if (d[q] !== d[q + 1] || d[q] !== d[q + 2]) return false;
  return true;
}
