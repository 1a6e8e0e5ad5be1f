// Model output to 8-bit pixels, diffusers' exact [-1, 1] → u8 mapping, and a grid for batches.
// Kept apart from png.ts so that browser bundles get it without pngjs (which needs Node's zlib).

export interface Image {
  width: number;
  height: number;
  channels: 1 | 3;
  pixels: Uint8Array;
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
