// Model output to PNG: diffusers' exact [-1, 1] → u8 mapping, a grid for batches, and writes that
// never overwrite an earlier result by accident.
import { PNG, type ColorType } from 'pngjs';

export interface Image {
  width: number;
  height: number;
  channels: 1 | 3;
  pixels: Uint8Array;
}

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

// numpy's round() is round-half-to-even, unlike Math.round.
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * diffusers' VaeImageProcessor postprocess in float32: `(x / 2 + 0.5).clamp(0, 1)`, then numpy's
 * `(x * 255).round().astype(uint8)`. Each step is rounded to f32 as torch/numpy do, so the bytes
 * match diffusers exactly. NaN becomes 0.
 */
export function toPixel(x: number): number {
  let v = Math.fround(Math.fround(x / 2) + 0.5);
  if (!(v > 0)) return 0;
  if (v > 1) v = 1;
  return roundHalfEven(Math.fround(v * 255));
}

/** A [B, C, H, W] batch (C = 1 or 3, values in [-1, 1]) as one image, tiled row by row. */
export function tensorToImage(data: Float32Array, shape: [number, number, number, number], opts: { cols?: number } = {}): Image {
  const [B, C, H, W] = shape;
  if (C !== 1 && C !== 3) throw new RangeError(`tensorToImage: expected 1 or 3 channels, got shape [${shape.join(', ')}]`);
  if (data.length !== B * C * H * W) throw new RangeError(`tensorToImage: shape [${shape.join(', ')}] needs ${B * C * H * W} values, got ${data.length}`);
  if (B < 1) throw new RangeError('tensorToImage: empty batch');
  const cols = Math.min(B, opts.cols ?? Math.ceil(Math.sqrt(B)));
  if (!Number.isSafeInteger(cols) || cols < 1) throw new RangeError(`tensorToImage: cols must be a positive integer, got ${opts.cols}`);
  const rows = Math.ceil(B / cols);
  const width = cols * W;
  const height = rows * H;
  const pixels = new Uint8Array(width * height * C);
  const plane = H * W;
  for (let b = 0; b < B; b++) {
    const x0 = (b % cols) * W;
    const y0 = Math.floor(b / cols) * H;
    for (let c = 0; c < C; c++) {
      const base = (b * C + c) * plane;
      for (let y = 0; y < H; y++) {
        let o = ((y0 + y) * width + x0) * C + c;
        for (let x = 0; x < W; x++, o += C) pixels[o] = toPixel(data[base + y * W + x]!);
      }
    }
  }
  return { width, height, channels: C, pixels };
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
