// Few-step models as presets: the defaults their model cards run them with, which differ enough
// from a Stable Diffusion folder's (50 steps at guidance 7.5 with the folder's scheduler) that the
// plain defaults draw noise or mush. GPU-free plain data, read by model_info.ts.
//
// - SD-Turbo and SDXL-Turbo (adversarial diffusion distillation): one step (up to 4), no guidance
//   (guidance_scale 0.0, so no unconditional batch), Euler ancestral with trailing timestep
//   spacing (timestep_spacing "trailing", as their cards say) and the cards'
//   `num_inference_steps=1, guidance_scale=0.0`. At one step Euler ancestral and plain Euler
//   agree (the last step adds no noise); at 2-4 ancestral sampling is what ADD was trained for.
//   Trailing spacing is what makes one step start at t = 999 (pure noise) rather than t = 1, so the
//   preset sets it over whatever the folder's scheduler_config.json says. Both cards generate at
//   512×512; SDXL-Turbo's U-Net config says 1024 (sample_size 128), so its preset sets the size.
// - LCM (latent consistency distillation): LCMScheduler, 4 steps. An LCM-distilled U-Net with
//   time_cond_proj_dim takes the guidance scale as an embedding instead of a second batch
//   (diffusers' LatentConsistencyModelPipeline and, for such U-Nets, StableDiffusionPipeline and
//   StableDiffusionXLPipeline: do_classifier_free_guidance is false), with
//   LatentConsistencyModelPipeline's default guidance_scale 8.5. An LCM folder whose U-Net does not
//   embed the guidance (LCM-LoRA fused into the weights) gets guidance 1, no guidance batch: their
//   cards say to disable guidance or keep it between 1 and 2.
import type { SchedulerName } from '../schedulers/registry.ts';

export const PRESET_NAMES = ['sd-turbo', 'sdxl-turbo', 'lcm'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface Preset {
  readonly name: PresetName;
  /** One line for help text. */
  readonly description: string;
  readonly steps: number;
  /** The guidance scale; for LCM, see lcmGuidance. */
  readonly guidance: number;
  readonly scheduler: SchedulerName;
  /** Values set over the folder's scheduler_config.json, whichever scheduler runs (from_config with overrides). */
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  /** The image size its card generates at, [height, width] in pixels, where it is not the U-Net's default. */
  readonly imageSize?: readonly [number, number];
  /** true: Stable Diffusion XL pipelines only; false: SD 1.x/2.x only; absent: either. */
  readonly xl?: boolean;
}

export const PRESETS: { readonly [N in PresetName]: Preset } = {
  'sd-turbo': { name: 'sd-turbo', description: 'SD-Turbo: 1 euler-a step (trailing), no guidance', steps: 1, guidance: 0, scheduler: 'euler-a', schedulerConfig: { timestep_spacing: 'trailing' }, xl: false },
  'sdxl-turbo': { name: 'sdxl-turbo', description: 'SDXL-Turbo: 1 euler-a step (trailing), no guidance, 512x512', steps: 1, guidance: 0, scheduler: 'euler-a', schedulerConfig: { timestep_spacing: 'trailing' }, imageSize: [512, 512], xl: true },
  lcm: { name: 'lcm', description: 'latent consistency models: 4 lcm steps, guidance 8.5 as an embedding', steps: 4, guidance: 8.5, scheduler: 'lcm', schedulerConfig: {} },
};

/** LCM's guidance: LatentConsistencyModelPipeline's 8.5 where the U-Net embeds it, else 1 (no guidance batch). */
export function lcmGuidance(guidanceEmbedded: boolean): number {
  return guidanceEmbedded ? PRESETS.lcm.guidance : 1;
}

/** Hub repositories with a known preset, lower-cased (Hub ids resolve case-insensitively). */
export const HUB_PRESETS: Readonly<Record<string, PresetName>> = {
  'stabilityai/sd-turbo': 'sd-turbo',
  'stabilityai/sdxl-turbo': 'sdxl-turbo',
  'simianluo/lcm_dreamshaper_v7': 'lcm',
};

export function isPresetName(v: unknown): v is PresetName {
  return PRESET_NAMES.includes(v as PresetName);
}

/** How a preset came to apply: asked for, the Hub repository's name, or the folder's configs. */
export type PresetSource = 'option' | 'repo' | 'config';

export interface PresetEvidence {
  /** The Hub repository the model is read from ('owner/name'), if any. */
  repo?: string | null;
  /** scheduler_config.json's _class_name. */
  schedulerClass?: unknown;
  /** The U-Net's time_cond_proj_dim (null: none). */
  timeCondProjDim?: number | null;
}

/**
 * The preset a model gets without being told: a known Hub repository's, else 'lcm' for an
 * LCM-distilled U-Net (time_cond_proj_dim) or a folder whose scheduler is an LCMScheduler, else
 * none (a turbo model's configs look like any SD 2.1 or SDXL folder's; name it with the preset
 * option when it is not read from its Hub repository).
 */
export function detectPreset(e: PresetEvidence): { name: PresetName; source: PresetSource } | null {
  const byRepo = e.repo ? HUB_PRESETS[e.repo.toLowerCase()] : undefined;
  if (byRepo) return { name: byRepo, source: 'repo' };
  if (e.timeCondProjDim != null || e.schedulerClass === 'LCMScheduler') return { name: 'lcm', source: 'config' };
  return null;
}
