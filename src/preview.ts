// Cheap previews while denoising: the latents mapped straight to RGB on the CPU, without the VAE.
// They are tiny (latent size, 1/8 of the image for SD) and only meant to show the picture forming.
// Also the RGBA conversion of finished images, which canvases and ImageData take as they are.
import { tensorToImage } from './io/image.ts';
import { ConfigError } from './errors.ts';

export interface RgbaImage {
  width: number;
  height: number;
  /** Row-major RGBA, ready for `new ImageData(data, width, height)`. */
  data: Uint8ClampedArray;
}

/**
 * SD 1.x/2.x latents → approximate RGB in [-1, 1], one row per latent channel, columns R, G, B.
 * These are the least-squares factors Keturn fitted between SD's latents (as the pipeline holds
 * them, i.e. already times scaling_factor) and the decoded images downscaled to latent size
 * ("Decoding latents to RGB without upscaling", discuss.huggingface.co, Nov 2022); many UIs use
 * them for live previews. They are a property of SD's VAE, so only text (SD) models use them.
 */
export const SD_LATENT_RGB: readonly (readonly [number, number, number])[] = [
  [0.298, 0.207, 0.208],
  [0.187, 0.286, 0.173],
  [-0.158, 0.189, 0.264],
  [-0.184, -0.271, -0.473],
];

/**
 * A model's own linear latent → image map: image[k] = bias[k] + Σ_c latentToImage[c][k] · latent[c],
 * on the latents as the pipeline holds them (times scaling_factor, like SD_LATENT_RGB), giving
 * values in [-1, 1]. One image channel is shown as gray, three as RGB. From fresco.json's "preview".
 */
export interface PreviewFactors {
  /** One row per latent channel, one column per image channel. */
  latentToImage: readonly (readonly number[])[];
  /** One per image channel. */
  bias: readonly number[];
}

/** 'sd': SD_LATENT_RGB; 'normalize': per-channel stretch (no factors known); { factors }: the model card's. */
export type PreviewMode = 'sd' | 'normalize' | { factors: PreviewFactors };

const SD_FACTORS: PreviewFactors = { latentToImage: SD_LATENT_RGB, bias: [0, 0, 0] };

/**
 * fresco.json's "preview" entry, checked against the model: a latentChannels × imageChannels
 * matrix of finite numbers and imageChannels biases (1 or 3 image channels). `where` names the card.
 */
export function parsePreviewFactors(entry: unknown, latentChannels: number, imageChannels: number, where = 'fresco.json'): PreviewFactors {
  const bad = (why: string) => new ConfigError(`${where}: "preview" ${why}`);
  const row = (v: unknown, n: number, what: string): number[] => {
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw bad(`${what} must be ${n} finite number(s), one per image channel, got ${JSON.stringify(v)}`);
    return v as number[];
  };
  if (imageChannels !== 1 && imageChannels !== 3) throw bad(`is only for 1- or 3-channel images; this model's VAE gives ${imageChannels}`);
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad('must be an object { "latent_to_image": [[...]], "bias": [...] }');
  const { latent_to_image: m, bias } = entry as Record<string, unknown>;
  if (!Array.isArray(m) || m.length !== latentChannels) throw bad(`"latent_to_image" must have one row per latent channel (${latentChannels}), got ${Array.isArray(m) ? m.length : JSON.stringify(m)}`);
  return { latentToImage: m.map((r, c) => row(r, imageChannels, `"latent_to_image" row ${c}`)), bias: row(bias, imageChannels, '"bias"') };
}

function tileOrigin(b: number, cols: number, w: number, h: number): [number, number] {
  return [(b % cols) * w, Math.floor(b / cols) * h];
}

/**
 * Latents [B, C, h, w] as one RGBA grid (cols per row, as the final image's grid). 'sd' applies
 * SD_LATENT_RGB (needs C = 4); { factors } applies a model's own factors (C rows); 'normalize'
 * stretches each of the first min(3, C) channels of each image to 0..255 (one channel: gray).
 */
export function latentPreview(latents: Float32Array, shape: readonly number[], mode: PreviewMode, cols?: number): RgbaImage {
  const [B, C, h, w] = shape as [number, number, number, number];
  if (shape.length !== 4 || latents.length !== B * C * h * w) throw new RangeError(`latentPreview: shape [${shape.join(', ')}] does not match ${latents.length} values`);
  const f = mode === 'sd' ? SD_FACTORS : mode === 'normalize' ? null : mode.factors;
  if (f && C !== f.latentToImage.length) throw new RangeError(`latentPreview: the ${mode === 'sd' ? 'SD ' : ''}factors need ${f.latentToImage.length} latent channels, got ${C}`);
  const nc = Math.min(B, cols ?? Math.ceil(Math.sqrt(B)));
  const width = nc * w;
  const height = Math.ceil(B / nc) * h;
  const data = new Uint8ClampedArray(width * height * 4);
  const plane = h * w;
  for (let b = 0; b < B; b++) {
    const [x0, y0] = tileOrigin(b, nc, w, h);
    const at = (c: number, p: number) => latents[(b * C + c) * plane + p]!;
    const used = Math.min(3, C);
    const lo = new Array<number>(used).fill(Infinity);
    const hi = new Array<number>(used).fill(-Infinity);
    if (!f) {
      for (let c = 0; c < used; c++)
        for (let p = 0; p < plane; p++) {
          lo[c] = Math.min(lo[c]!, at(c, p));
          hi[c] = Math.max(hi[c]!, at(c, p));
        }
    }
    for (let p = 0; p < plane; p++) {
      const o = (((y0 + Math.floor(p / w)) * width) + x0 + (p % w)) * 4;
      if (f) {
        const K = f.bias.length;
        for (let k = 0; k < 3; k++) {
          // One image channel: the same value in R, G and B (gray).
          const kk = K === 1 ? 0 : k;
          let v = f.bias[kk]!;
          for (let c = 0; c < C; c++) v += f.latentToImage[c]![kk]! * at(c, p);
          data[o + k] = (v + 1) * 127.5;
        }
      } else {
        const n = (c: number) => (hi[c]! > lo[c]! ? ((at(c, p) - lo[c]!) / (hi[c]! - lo[c]!)) * 255 : 128);
        if (used === 1) data[o] = data[o + 1] = data[o + 2] = n(0);
        else for (let k = 0; k < 3; k++) data[o + k] = k < used ? n(k) : 0;
      }
      data[o + 3] = 255;
    }
  }
  return { width, height, data };
}

/** A finished image [B, C, H, W] in [-1, 1] (C = 1 or 3) as RGBA: the PNG writer's pixels, alpha added. */
export function imageToRgba(image: Float32Array, shape: readonly [number, number, number, number], cols?: number): RgbaImage {
  const img = tensorToImage(image, [...shape], { cols });
  const n = img.width * img.height;
  const data = new Uint8ClampedArray(n * 4);
  for (let p = 0; p < n; p++) {
    for (let k = 0; k < 3; k++) data[4 * p + k] = img.pixels[p * img.channels + (img.channels === 1 ? 0 : k)]!;
    data[4 * p + 3] = 255;
  }
  return { width: img.width, height: img.height, data };
}
