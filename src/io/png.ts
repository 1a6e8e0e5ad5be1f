// Model output to PNG: diffusers' exact [-1, 1] → u8 mapping, a grid for batches, and writes that
// never overwrite an earlier result by accident.
import { PNG, type ColorType } from 'pngjs';

export { toPixel, tensorToImage, type Image } from './image.ts';

const COLOR_TYPE: Record<1 | 3 | 4, ColorType> = { 1: 0, 3: 2, 4: 6 };

function checkSize(width: number, height: number): void {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`PNG size must be positive integers, got ${width}x${height}`);
  }
}

/** 8-bit gray, RGB or RGBA pixels, row-major and interleaved. */
export function encodePng(width: number, height: number, channels: 1 | 3 | 4, pixels: Uint8Array): Uint8Array {
  checkSize(width, height);
  if (!(channels in COLOR_TYPE)) throw new RangeError(`PNG channels must be 1, 3 or 4, got ${channels}`);
  if (pixels.length !== width * height * channels) {
    throw new RangeError(`PNG ${width}x${height}x${channels} needs ${width * height * channels} bytes, got ${pixels.length}`);
  }
  const colorType = COLOR_TYPE[channels];
  // pngjs packs straight from `data` when input and output color types match, so gray and RGB
  // are written without an RGBA detour.
  const src = { width, height, data: Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength) };
  const out = PNG.sync.write(src as PNG, { colorType, inputColorType: colorType, inputHasAlpha: channels === 4, bitDepth: 8 });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Any PNG, expanded to 8-bit RGBA. */
export function decodePng(bytes: Uint8Array): { width: number; height: number; channels: 4; pixels: Uint8Array } {
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return { width: png.width, height: png.height, channels: 4, pixels: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
}

/** Node: writes a new file (creating its folder); an existing one is kept unless `force`. */
export async function writeFileNoClobber(path: string, bytes: Uint8Array, force: boolean): Promise<void> {
  const fs = await import('node:fs/promises');
  const { dirname } = await import('node:path');
  await fs.mkdir(dirname(path), { recursive: true });
  let fh;
  try {
    fh = await fs.open(path, force ? 'w' : 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`${path} already exists; pass --force to overwrite it`);
    throw e;
  }
  try {
    await fh.writeFile(bytes);
  } finally {
    await fh.close();
  }
}
