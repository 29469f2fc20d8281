// Turning a file or a gallery PNG into the RGBA pixels the model's input is made from (canvas), with the page's rules
// for what it can use, and drawing the model's input back for the preview.
import type { RgbaImage } from '../pi/image.js';

/** Images above this many pixels are refused (decoding them would take the page's memory). */
export const MAX_MEGAPIXELS = 16;
/** Width / height beyond this (or its inverse) is refused: the centre square would drop too much of the picture. */
export const MAX_ASPECT = 1.25;

export class InputError extends Error {}

async function decode(blob: Blob, what: string): Promise<ImageBitmap> {
  try {
    return await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new InputError(
      `${what} is not an image this browser can decode${blob.type ? ` (type ${blob.type})` : ''}; choose a PNG or JPEG picture.`,
    );
  }
}

/**
 * The pixels of `blob` at `side` x `side`: an image of exactly that size is taken as is (gallery images: no resampling,
 * so the page sends the same values as the CLI client for the same PNG); any other image is centre-cropped to a square
 * and resized.
 */
export async function pixelsOf(blob: Blob, what: string, side: number): Promise<RgbaImage> {
  if (blob.type && !blob.type.startsWith('image/'))
    throw new InputError(`${what} is a ${blob.type} file, not an image; choose a PNG or JPEG picture.`);
  const bmp = await decode(blob, what);
  try {
    const { width: w, height: h } = bmp;
    if (w * h > MAX_MEGAPIXELS * 1e6)
      throw new InputError(
        `${what} is ${w}x${h} (${((w * h) / 1e6).toFixed(1)} megapixels); the page takes images of at most ${MAX_MEGAPIXELS} megapixels.`,
      );
    if (Math.max(w / h, h / w) > MAX_ASPECT)
      throw new InputError(
        `${what} is ${w}x${h}, too far from square (at most ${MAX_ASPECT}:1); the model classifies square pictures, so crop it first.`,
      );
    const c = document.createElement('canvas');
    c.width = c.height = side;
    const g = c.getContext('2d', { willReadFrequently: true })!;
    if (w === side && h === side) g.drawImage(bmp, 0, 0);
    else {
      const s = Math.min(w, h);
      g.imageSmoothingEnabled = true;
      g.imageSmoothingQuality = 'high';
      g.fillStyle = '#000';
      g.fillRect(0, 0, side, side);
      g.drawImage(bmp, (w - s) / 2, (h - s) / 2, s, s, 0, 0, side, side);
    }
    const d = g.getImageData(0, 0, side, side);
    return { width: side, height: side, data: d.data };
  } finally {
    bmp.close();
  }
}

/** Draws the model's input (CHW, normalised) on `canvas`, undoing the normalisation. */
export function drawInput(
  canvas: HTMLCanvasElement,
  x: Float32Array,
  shape: readonly number[],
  mean: readonly number[],
  std: readonly number[],
): void {
  const [c, h, w] = shape as [number, number, number];
  canvas.width = w;
  canvas.height = h;
  const g = canvas.getContext('2d')!;
  const img = g.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) {
      const ch = Math.min(k, c - 1);
      img.data[4 * p + k] = Math.round(Math.max(0, Math.min(1, x[ch * h * w + p]! * std[ch]! + mean[ch]!)) * 255);
    }
    img.data[4 * p + 3] = 255;
  }
  g.putImageData(img, 0, 0);
}
