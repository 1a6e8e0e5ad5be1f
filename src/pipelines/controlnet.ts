// What StableDiffusionControlNetPipeline (diffusers v0.25.1) asks of its ControlNets, and how it
// weighs them step by step. GPU-free: the folder loader, readModelInfo and generate()'s option
// checks share it.
//
// Per U-Net call i of n (n = the scheduler's timesteps, PNDM's extra call included), ControlNet k's
// residuals are multiplied by controlnet_conditioning_scale[k] · keep[k], keep being
// 1 − float(i / n < control_guidance_start[k] or (i + 1) / n > control_guidance_end[k]). diffusers
// still runs a net whose keep is 0 (its residuals times 0), and so does Fresco: one planned step graph
// serves every step, the scale × keep of each net riding in the step row.
import { checkControlNetFits, type ControlNetConfig } from '../models/controlnet_config.ts';
import type { UNet2DConditionConfig } from '../models/unet_2d_condition_config.ts';
import { ConfigError } from '../errors.ts';

/** One ControlNet's weighting for a run: diffusers' controlnet_conditioning_scale and control_guidance_start / _end. */
export interface ControlWeighting {
  scale: number;
  start: number;
  end: number;
}

/**
 * Refuses a ControlNet that StableDiffusionControlNetPipeline could not run with this U-Net and VAE
 * (it would fail at the first step), or whose inputs that pipeline never gives.
 */
export function checkPipelineControlNet(cn: ControlNetConfig, unet: UNet2DConditionConfig, vaeScaleFactor: number, xl: boolean): void {
  if (xl) throw new ConfigError(`${cn.where}: ControlNets with Stable Diffusion XL (StableDiffusionXLControlNetPipeline) are not supported; they work with Stable Diffusion 1.x/2.x pipelines`);
  checkControlNetFits(cn, unet, vaeScaleFactor);
  // The control image processor converts every image to RGB.
  if (cn.conditioningChannels !== 3) throw new ConfigError(`${cn.where}: conditioning_channels ${cn.conditioningChannels}: StableDiffusionControlNetPipeline gives the ControlNet RGB control images (3 channels)`);
  if (cn.additionEmbedType) throw new ConfigError(`${cn.where}: addition_embed_type '${cn.additionEmbedType}' needs text_embeds and time_ids, which StableDiffusionControlNetPipeline does not give its ControlNet (an SDXL ControlNet)`);
  if (cn.classEmbedType !== null || cn.numClassEmbeds !== null) throw new ConfigError(`${cn.where}: a class-conditional ControlNet (class_embed_type / num_class_embeds) needs class labels, which StableDiffusionControlNetPipeline does not give`);
}

/** diffusers' keep flag of U-Net call i of n for [start, end]. */
export function controlKeep(i: number, n: number, start: number, end: number): 0 | 1 {
  return i / n < start || (i + 1) / n > end ? 0 : 1;
}

/** Checks one net's weighting as diffusers' check_inputs does (start < end, start >= 0, end <= 1), `what` naming it. */
export function checkWeighting(w: ControlWeighting, what: string, fail: (message: string) => Error): void {
  const show = (v: unknown) => (typeof v === 'number' ? String(v) : JSON.stringify(v));
  if (typeof w.scale !== 'number' || !Number.isFinite(w.scale)) throw fail(`${what} scale must be a finite number, got ${show(w.scale)}`);
  for (const k of ['start', 'end'] as const) {
    if (typeof w[k] !== 'number' || !Number.isFinite(w[k])) throw fail(`${what} ${k} must be a number in [0, 1], got ${show(w[k])}`);
  }
  if (w.start < 0) throw fail(`${what} start ${w.start} cannot be below 0`);
  if (w.end > 1) throw fail(`${what} end ${w.end} cannot be above 1`);
  if (w.start >= w.end) throw fail(`${what} start ${w.start} must be below its end ${w.end}`);
}
