// Pieces of img2img and inpainting, as diffusers' StableDiffusionImg2ImgPipeline and
// StableDiffusionInpaintPipeline (4-channel U-Net) define them: the init image's latents, where
// `strength` starts the loop, the scheduler's add_noise coefficients at a step, and the pixel mask
// brought to latent size.
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { scale } from '../kernels/elementwise.ts';
import type { AutoencoderKL } from '../models/autoencoder_kl.ts';
import type { Scheduler } from '../schedulers/scheduler.ts';

/**
 * diffusers' retrieve_latents sample_mode: 'sample' draws from the VAE posterior (what img2img and
 * inpainting do), 'argmax' takes its mean.
 */
export type SampleMode = 'sample' | 'argmax';

/** Philox stream of the posterior's noise: 0 is the initial latents, 1 the per-step noise. */
export const POSTERIOR_NOISE_STREAM = 2;

/** The init image [B, C, H, W] in [-1, 1] → latents · scaling_factor, as img2img's prepare_latents. */
export function encodeInitLatents(g: Graph, vae: AutoencoderKL, image: Tensor, mode: SampleMode, seed: number): Tensor {
  const z = mode === 'sample' ? vae.encode(g, image, { seed, stream: POSTERIOR_NOISE_STREAM }) : vae.encodeMean(g, image);
  const out = scale(g, 'init-latents', z, vae.scalingFactor);
  g.release(z);
  return out;
}

/**
 * The first scheduler step a run with this strength takes: init_timestep = min(int(steps·strength),
 * steps), t_start = max(steps − init_timestep, 0); the loop runs timesteps[t_start:].
 */
export function img2imgStartStep(steps: number, strength: number): number {
  if (!(strength > 0 && strength <= 1)) throw new RangeError(`strength must be in (0, 1], got ${strength}`);
  const initTimestep = Math.min(Math.trunc(steps * strength), steps);
  const start = Math.max(steps - initTimestep, 0);
  if (start >= steps) throw new RangeError(`strength ${strength} with ${steps} steps leaves no denoising step (int(steps·strength) = 0): raise the strength or the steps`);
  return start;
}

const f = Math.fround;

/**
 * add_noise(x0, ε, timesteps[i]) = a·x0 + b·ε: DDPM/DDIM a = sqrt(ᾱ_t), b = sqrt(1 − ᾱ_t) (torch
 * float32); Euler a = 1, b = σ_i. i = steps (past the last step) is the clean latents, [1, 0].
 */
export function addNoiseCoefficients(sched: Scheduler, i: number): [number, number] {
  const steps = sched.timesteps.length;
  if (!Number.isInteger(i) || i < 0 || i > steps) throw new RangeError(`add_noise step ${i} is outside 0..${steps}`);
  if (i === steps) return [1, 0];
  if ('sigmas' in sched && sched.sigmas instanceof Float32Array) return [1, sched.sigmas[i]!];
  if (!('alphasCumprod' in sched) || !(sched.alphasCumprod instanceof Float32Array)) throw new Error(`scheduler ${sched.name} has no add_noise`);
  const ab = sched.alphasCumprod[sched.timesteps[i]!]!;
  return [f(Math.sqrt(ab)), f(Math.sqrt(f(1 - ab)))];
}

/**
 * A [B, 1, H, W] pixel mask (1 = repaint) at latent size [B, 1, h, w]: binarized at 0.5 as
 * diffusers' mask processor does, then F.interpolate's default 'nearest' (source index
 * floor(dst·H/h), the top-left pixel of each block for integer factors).
 */
export function latentMask(mask: Float32Array, B: number, H: number, W: number, h: number, w: number): Float32Array {
  if (mask.length !== B * H * W) throw new RangeError(`mask has ${mask.length} values, expected ${B * H * W} for [${B}, 1, ${H}, ${W}]`);
  const out = new Float32Array(B * h * w);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const sy = Math.min(Math.floor((y * H) / h), H - 1);
        const sx = Math.min(Math.floor((x * W) / w), W - 1);
        out[(b * h + y) * w + x] = mask[(b * H + sy) * W + sx]! >= 0.5 ? 1 : 0;
      }
  return out;
}
