// Images going into a model (img2img's init image, inpainting's mask) as diffusers' image and mask
// processors prepare them: 8-bit RGBA → [C, H, W] in [-1, 1], masks binarized at 0.5, and an
// optional Lanczos resize to the size generated. GPU-free, so the CLI and pages share it.

/** 8-bit RGBA pixels, row-major: ImageData and decoded PNGs both fit. */
export interface RgbaPixels {
  width: number;
  height: number;
  data: Uint8Array | Uint8ClampedArray;
}

/** Checks that `img` holds width·height RGBA pixels; `what` names it in the error. */
export function checkRgba(img: RgbaPixels, what: string, fail: (message: string) => Error): void {
  const { width, height, data } = img ?? ({} as RgbaPixels);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw fail(`${what} needs a positive whole width and height, got ${width}x${height}`);
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) throw fail(`${what}.data must be a Uint8Array or Uint8ClampedArray of RGBA pixels (as ImageData.data)`);
  if (data.length !== width * height * 4) throw fail(`${what} is ${width}x${height}, which needs ${width * height * 4} RGBA bytes; its data has ${data.length}`);
}

// PIL's fixed-point ITU-R 601-2 luma (convert('L')), exact for gray pixels.
function luma(px: RgbaPixels['data'], p: number): number {
  return (px[4 * p]! * 19595 + px[4 * p + 1]! * 38470 + px[4 * p + 2]! * 7471 + 0x8000) >>> 16;
}

/** [channels, H, W] in [-1, 1] (diffusers' 2·(pixel/255) − 1); one channel is the PIL luma. */
export function rgbaToImageTensor(img: RgbaPixels, channels: number): Float32Array {
  const n = img.width * img.height;
  const px = img.data;
  const out = new Float32Array(channels * n);
  for (let c = 0; c < channels; c++)
    for (let p = 0; p < n; p++) {
      const v = channels === 1 ? luma(px, p) : px[4 * p + Math.min(c, 2)]!;
      out[c * n + p] = Math.fround(Math.fround(v / 255) * 2 - 1);
    }
  return out;
}

/** The image as gray (PIL's convert('L')) in all three channels: diffusers' mask processor grays before it resizes. */
export function grayRgba(img: RgbaPixels): RgbaPixels {
  const data = new Uint8ClampedArray(img.width * img.height * 4);
  for (let p = 0; p < img.width * img.height; p++) {
    data.fill(luma(img.data, p), 4 * p, 4 * p + 3);
    data[4 * p + 3] = 255;
  }
  return { width: img.width, height: img.height, data };
}

/** [1, H, W]: 1 where the pixel's luma is white (≥ 0.5, repaint), else 0 (keep). */
export function rgbaToMask(img: RgbaPixels): Float32Array {
  return Float32Array.from({ length: img.width * img.height }, (_, p) => (luma(img.data, p) / 255 >= 0.5 ? 1 : 0));
}

function lanczos(x: number): number {
  if (x === 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

/** Per output index: the first source index and the normalized weights (support widened when shrinking, as PIL does). */
function resampleWeights(inSize: number, outSize: number): { first: number[]; weights: Float64Array[] } {
  const scale = inSize / outSize;
  const support = 3 * Math.max(scale, 1);
  const step = Math.max(scale, 1);
  const first: number[] = [];
  const weights: Float64Array[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(center - support));
    const hi = Math.min(inSize, Math.ceil(center + support));
    const w = new Float64Array(hi - lo);
    let sum = 0;
    for (let i = lo; i < hi; i++) sum += w[i - lo] = lanczos((i + 0.5 - center) / step);
    for (let i = 0; i < w.length; i++) w[i]! /= sum;
    first.push(lo);
    weights.push(w);
  }
  return { first, weights };
}

/** A Lanczos-3 resize (PIL's Image.LANCZOS, which diffusers' processors use), separable, rounded to 8 bits. */
export function resizeRgba(img: RgbaPixels, width: number, height: number): RgbaPixels {
  if (img.width === width && img.height === height) return img;
  const h = resampleWeights(img.width, width);
  const v = resampleWeights(img.height, height);
  // Horizontal pass into 8-bit values (as PIL), then vertical pass to bytes.
  const mid = new Float64Array(width * img.height * 4);
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < width; x++) {
      const w = h.weights[x]!;
      for (let k = 0; k < 4; k++) {
        let s = 0;
        for (let i = 0; i < w.length; i++) s += w[i]! * img.data[(y * img.width + h.first[x]! + i) * 4 + k]!;
        // PIL's 8-bit path keeps the horizontal pass as 8-bit pixels too: rounded and clamped.
        mid[(y * width + x) * 4 + k] = Math.min(255, Math.max(0, Math.round(s)));
      }
    }
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    const w = v.weights[y]!;
    for (let x = 0; x < width; x++)
      for (let k = 0; k < 4; k++) {
        let s = 0;
        for (let i = 0; i < w.length; i++) s += w[i]! * mid[((v.first[y]! + i) * width + x) * 4 + k]!;
        data[(y * width + x) * 4 + k] = Math.round(s);
      }
  }
  return { width, height, data };
}
