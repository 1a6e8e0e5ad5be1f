// Flag parsing for `fresco generate` and `fresco quantize`, kept apart from running so bad input
// is a usage error before any GPU work starts.

import { isSchedulerName, SCHEDULER_NAMES, schedulerHelpLines, type SchedulerName } from '../schedulers/registry.ts';
import { PRECISIONS, WEIGHT_FORMATS, type Precision, type WeightFormat } from '../models/precision.ts';
import { QUANT_FORMATS, type QuantFormat } from '../io/quant.ts';
import { resolveClassLabels } from '../pipelines/class_names.ts';
import { isPresetName, PRESET_NAMES, type PresetName } from '../pipelines/presets.ts';
import { UsageError } from '../errors.ts';


export interface GenerateArgs {
  classes: string[];
  count: number;
  seed: number | null;
  steps: number | null;
  guidance: number | null;
  scheduler: SchedulerName | null;
  eta: number;
  model: string | null;
  out: string;
  force: boolean;
  initImage: string | null;
  strength: number | null;
  mask: string | null;
  /** Resize --init-image and --mask to the size generated instead of refusing another size. */
  resize: boolean;
  precision: Precision;
  /** --weights: how the U-Net's (ControlNets') GEMM weights are stored on the GPU; absent: as the files have them. */
  weights?: WeightFormat;
  /** Text-to-image (Stable Diffusion folders): the prompt, and the negative prompt. */
  prompt: string | null;
  negativePrompt: string | null;
  width: number | null;
  height: number | null;
  /** Stable Diffusion XL: the second encoder's prompts (diffusers' prompt_2, negative_prompt_2). */
  prompt2: string | null;
  negativePrompt2: string | null;
  /** SDXL time ids, in diffusers' order: original_size and target_size (height, width), crops_coords_top_left (top, left). */
  originalSize: [number, number] | null;
  cropTopLeft: [number, number] | null;
  targetSize: [number, number] | null;
  /** --preset: a few-step preset, or null for `none`; absent: the library detects one. */
  preset?: PresetName | null;
  /** --lora FILE[:SCALE], in order (scale 1 when not given). */
  loras: { file: string; scale: number }[];
  /** --controlnet DIR and --control-image FILE.png, in order (one image per net). */
  controlnets: string[];
  controlImages: string[];
  /** --control-scale, --control-start, --control-end: none, one for every net, or one per net. */
  controlScales: number[];
  controlStarts: number[];
  controlEnds: number[];
  /** --canny LOW,HIGH: run every control image through Canny edge detection first. */
  canny: [number, number] | null;
}

/** The flags only Stable Diffusion XL takes. */
export const SDXL_FLAGS = ['--prompt-2', '--negative-prompt-2', '--original-size', '--crop-top-left', '--target-size'] as const;

export const GENERATE_USAGE = `usage: fresco generate [options]
  --model DIR          a diffusers folder: class-conditional LDM (unet/ vae/ scheduler/) or Stable
                       Diffusion 1.x/2.x/XL pipeline (model_index.json); default weights/fashion-ldm;
                       or its URL, or a Hub repository: hf:owner/name[@revision][/subfolder]
  --preset NAME        few-step defaults (steps, guidance, scheduler, size): sd-turbo, sdxl-turbo,
                       lcm or none (default: by the Hub repository; lcm for an LCM U-Net or scheduler)
  --class NAME|INDEX   class to draw, class-conditional models (repeatable; default: every class once;
                       null, or the null class's index (fashion-ldm: 10), draws unconditionally)
  --prompt TEXT        what to draw, text-to-image models (required for them)
  --negative-prompt TEXT  what to steer away from (text-to-image; default none)
  --width W --height H image size in pixels (text-to-image; default the model's)
  --prompt-2 TEXT, --negative-prompt-2 TEXT  SDXL's second text encoder's prompts (default the first)
  --original-size WxH, --target-size WxH, --crop-top-left Y,X  SDXL micro-conditioning in pixels
                       (default the image size, and 0,0)
  --count N            images per class or prompt (default 1)
  --seed N             RNG seed (default: random, printed)
  --steps N            denoising steps (default: class models the card's, else 25; text-to-image 50)
  --guidance G         classifier-free guidance scale (default: class models the card's, else 3;
                       text-to-image 7.5, Stable Diffusion XL 5)
  --scheduler NAME     the sampler (default: class models the card's, else ddim; text-to-image
                       the folder's own scheduler):
${schedulerHelpLines(' '.repeat(25)).join('\n')}
  --eta E              DDIM eta (default 0; DDIM only)
  --out FILE.png       output PNG, a grid when several images (default fresco.png)
  --force              overwrite FILE.png if it exists
  --init-image FILE.png  img2img: start from this image (gray or RGB; the image size, or --resize;
                       text-to-image without --width/--height: its size; not with SDXL)
  --strength S         how far to noise the init image, 0 < S <= 1 (default 0.8; needs --init-image)
  --mask FILE.png      inpaint: white pixels are repainted, black kept (needs --init-image)
  --resize             resize --init-image, --mask and --control-image to the image size (Lanczos)
                       instead of refusing another size
  --controlnet DIR     a ControlNet folder (config.json + weights; or URL, hf:owner/name) to steer
                       a Stable Diffusion 1.x/2.x model; repeatable, one --control-image each
  --control-image FILE.png  the ControlNet's input (an edge map, depth map, pose...), in the order
                       of --controlnet; without --width/--height the first one's size is the size
  --control-scale S    how strongly each ControlNet steers (default 1); one for all, or one per net
  --control-start S, --control-end S  the share of the steps each ControlNet acts in, 0 <= start
                       < end <= 1 (default 0 and 1); one for all, or one per net
  --canny LOW,HIGH     turn each --control-image into Canny edges first (OpenCV's cv2.Canny, on the
                       GPU; 100,200 as diffusers' examples), for canny ControlNets
  --lora FILE[:SCALE]  merge a LoRA (.safetensors: diffusers, PEFT or kohya keys; a path, URL or
                       hf:owner/name[/file]) into the weights at SCALE (default 1); repeatable
  --precision auto|f16|f32  auto (the default): f16 weights everywhere, f16 activations where
                       the GPU has shader-f16; f16: both always (an error without it); f32: none
  --weights q8|q4|float  the U-Net's and ControlNets' Linear and conv weights: q8 (int8, about half
                       the f16 bytes) or q4 (4-bit, about a quarter), quantized at load; float: as
                       --precision says (a folder fresco quantize wrote is dequantized); default: as
                       the files have them
  --version            print the version
  --help               print this help`;

function int(flag: string, v: string | undefined, min: number, max: number): number {
  if (v === undefined || !/^-?\d+$/.test(v)) throw new UsageError(`${flag} needs an integer, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** One of `choices` (their list, joined by `sep`, is what the message offers). */
function choice<T extends string>(flag: string, v: string | undefined, choices: readonly T[], sep = ', '): T {
  const c = choices.find((x) => x === v);
  if (!c) throw new UsageError(`${flag} must be ${choices.join(sep)}, got ${JSON.stringify(v ?? null)}`);
  return c;
}

/** WxH (width first, as --width and --height) → diffusers' (height, width). */
function size(flag: string, v: string | undefined): [number, number] {
  const m = v === undefined ? null : /^(\d+)x(\d+)$/i.exec(v);
  if (!m) throw new UsageError(`${flag} needs WIDTHxHEIGHT in pixels, like 1024x768, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  const [w, h] = [Number(m[1]), Number(m[2])];
  if (w < 1 || h < 1 || w > 16384 || h > 16384) throw new UsageError(`${flag} sizes must be between 1 and 16384, got ${v}`);
  return [h, w];
}

/** Y,X (top, then left), as diffusers' crops_coords_top_left. */
function topLeft(flag: string, v: string | undefined): [number, number] {
  const m = v === undefined ? null : /^(\d+),(\d+)$/.exec(v);
  if (!m) throw new UsageError(`${flag} needs TOP,LEFT in pixels, like 0,0 or 64,32, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  const [y, x] = [Number(m[1]), Number(m[2])];
  if (y > 16384 || x > 16384) throw new UsageError(`${flag} offsets must be between 0 and 16384, got ${v}`);
  return [y, x];
}

function num(flag: string, v: string | undefined, min: number, max: number): number {
  const n = v === undefined ? NaN : Number(v);
  if (!Number.isFinite(n) || v!.trim() === '') throw new UsageError(`${flag} needs a number, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  if (n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function parseGenerateArgs(argv: string[]): GenerateArgs {
  const a: GenerateArgs = { classes: [], count: 1, seed: null, steps: null, guidance: null, scheduler: null, eta: 0, model: null, out: 'fresco.png', force: false, initImage: null, strength: null, mask: null, resize: false, precision: 'auto', prompt: null, negativePrompt: null, width: null, height: null, prompt2: null, negativePrompt2: null, originalSize: null, cropTopLeft: null, targetSize: null, loras: [], controlnets: [], controlImages: [], controlScales: [], controlStarts: [], controlEnds: [], canny: null };
  const given = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i]!;
    let value: string | undefined;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    }
    // A flag's value never starts with `--`: `--class --seed 3` is a missing class, not class
    // "--seed" and a stray "3". (`--prompt=--x` still passes such a text.)
    const next = () => {
      if (value !== undefined) return value;
      const v = argv[i + 1];
      if (v?.startsWith('--')) throw new UsageError(`${flag} needs a value before the next option, got ${v}`);
      i++;
      return v;
    };
    if (!flag.startsWith('-')) throw new UsageError(`unexpected argument ${JSON.stringify(flag)}: options start with -- (a text with spaces needs quotes, as in --prompt "a red fox")`);
    given.add(flag);
    switch (flag) {
      case '--class': {
        const v = next();
        if (!v) throw new UsageError('--class needs a class name or index');
        a.classes.push(v);
        break;
      }
      case '--prompt':
      case '--negative-prompt':
      case '--prompt-2':
      case '--negative-prompt-2': {
        const v = next();
        if (v === undefined) throw new UsageError(`${flag} needs a text`);
        if (flag === '--prompt') a.prompt = v;
        else if (flag === '--negative-prompt') a.negativePrompt = v;
        else if (flag === '--prompt-2') a.prompt2 = v;
        else a.negativePrompt2 = v;
        break;
      }
      case '--original-size': a.originalSize = size(flag, next()); break;
      case '--target-size': a.targetSize = size(flag, next()); break;
      case '--crop-top-left': a.cropTopLeft = topLeft(flag, next()); break;
      case '--width': a.width = int(flag, next(), 8, 4096); break;
      case '--height': a.height = int(flag, next(), 8, 4096); break;
      case '--count': a.count = int(flag, next(), 1, 64); break;
      case '--seed': a.seed = int(flag, next(), 0, 2 ** 32 - 1); break;
      case '--steps': a.steps = int(flag, next(), 1, 1000); break;
      case '--guidance': a.guidance = num(flag, next(), 0, 100); break;
      case '--eta': a.eta = num(flag, next(), 0, 1); break;
      case '--scheduler': {
        const v = next();
        if (!isSchedulerName(v)) throw new UsageError(`--scheduler must be ${SCHEDULER_NAMES.join(', ')}, got ${JSON.stringify(v)}`);
        a.scheduler = v;
        break;
      }
      case '--preset': {
        const v = next();
        if (v === 'none') a.preset = null;
        else if (isPresetName(v)) a.preset = v;
        else throw new UsageError(`--preset must be ${PRESET_NAMES.join(', ')} or none, got ${JSON.stringify(v ?? null)}`);
        break;
      }
      case '--model': {
        const v = next();
        if (!v) throw new UsageError('--model needs a folder');
        a.model = v;
        break;
      }
      case '--out': {
        const v = next();
        if (!v || !v.toLowerCase().endsWith('.png')) throw new UsageError(`--out needs a .png file name, got ${JSON.stringify(v)}`);
        a.out = v;
        break;
      }
      case '--force': a.force = true; break;
      case '--resize': a.resize = true; break;
      case '--init-image':
      case '--mask': {
        const v = next();
        if (!v || !v.toLowerCase().endsWith('.png')) throw new UsageError(`${flag} needs a .png file, got ${JSON.stringify(v ?? null)}`);
        if (flag === '--mask') a.mask = v;
        else a.initImage = v;
        break;
      }
      case '--controlnet': {
        const v = next();
        if (!v) throw new UsageError('--controlnet needs a ControlNet folder');
        a.controlnets.push(v);
        break;
      }
      case '--control-image': {
        const v = next();
        if (!v || !v.toLowerCase().endsWith('.png')) throw new UsageError(`--control-image needs a .png file, got ${JSON.stringify(v ?? null)}`);
        a.controlImages.push(v);
        break;
      }
      case '--control-scale': a.controlScales.push(num(flag, next(), -100, 100)); break;
      case '--control-start': a.controlStarts.push(num(flag, next(), 0, 1)); break;
      case '--control-end': a.controlEnds.push(num(flag, next(), 0, 1)); break;
      case '--canny': {
        const v = next();
        const m = v === undefined ? null : /^(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)$/.exec(v);
        if (!m) throw new UsageError(`--canny needs LOW,HIGH thresholds, like 100,200, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
        a.canny = [Number(m[1]), Number(m[2])];
        break;
      }
      case '--lora': {
        const v = next();
        if (!v) throw new UsageError('--lora needs FILE or FILE:SCALE');
        // The last ':' starts a scale only when a number follows (a URL or a Windows path has its own colons).
        const m = /^(.+):(-?[\d.]+(?:e-?\d+)?)$/i.exec(v);
        const scale = m ? Number(m[2]) : 1;
        if (!Number.isFinite(scale)) throw new UsageError(`--lora ${v}: the scale after ':' must be a number`);
        a.loras.push({ file: m ? m[1]! : v, scale });
        break;
      }
      case '--precision': a.precision = choice(flag, next(), PRECISIONS); break;
      case '--weights': a.weights = choice(flag, next(), WEIGHT_FORMATS); break;
      case '--strength': {
        a.strength = num(flag, next(), 0, 1);
        if (a.strength === 0) throw new UsageError('--strength must be above 0 (0 would run no denoising step)');
        break;
      }
      default: throw new UsageError(`unknown option ${JSON.stringify(argv[i])}`);
    }
  }
  if (a.eta > 0 && a.scheduler !== null && a.scheduler !== 'ddim') throw new UsageError('--eta applies to --scheduler ddim only');
  if (a.strength !== null && a.initImage === null) throw new UsageError('--strength needs --init-image');
  if (a.mask !== null && a.initImage === null) throw new UsageError('--mask needs --init-image (the image to inpaint)');
  if (a.resize && a.initImage === null && !a.controlImages.length) throw new UsageError('--resize needs --init-image or --control-image (it resizes the init image, mask and control images)');
  const nets = a.controlnets.length;
  const controlFlags = (['--control-image', '--control-scale', '--control-start', '--control-end', '--canny'] as const).filter((f) => given.has(f));
  if (!nets && controlFlags.length) throw new UsageError(`${controlFlags.join(', ')} ${controlFlags.length > 1 ? 'need' : 'needs'} --controlnet`);
  if (nets && a.controlImages.length !== nets) throw new UsageError(`${nets} --controlnet given: --control-image is needed once per ControlNet, in the same order (got ${a.controlImages.length})`);
  for (const [flag, list] of [['--control-scale', a.controlScales], ['--control-start', a.controlStarts], ['--control-end', a.controlEnds]] as const) {
    if (list.length > 1 && list.length !== nets) throw new UsageError(`${flag} given ${list.length} times for ${nets} --controlnet: give it once for all, or once per ControlNet`);
  }
  if (nets && a.initImage !== null) throw new UsageError('--controlnet does not go with --init-image (img2img and inpainting with ControlNets are not supported)');
  if (nets && a.prompt === null) throw new UsageError('--controlnet needs --prompt (ControlNets steer text-to-image models)');
  if (a.prompt !== null && a.classes.length) throw new UsageError('--prompt and --class do not go together: a model is either text- or class-conditional');
  const textOnly = ['--negative-prompt', '--width', '--height', ...SDXL_FLAGS].filter((f) => given.has(f));
  if (a.prompt === null && textOnly.length) throw new UsageError(`${textOnly.join(', ')} ${textOnly.length > 1 ? 'need' : 'needs'} --prompt (text-to-image models)`);
  return a;
}

/**
 * Resolves class names (case-insensitive, or a unique prefix; `null`: the null class) and indices
 * (the null class's included: an unconditional sample) to labels.
 */
export function resolveClasses(requested: string[], names: string[] | null, numClasses: number, nullClass = numClasses - 1): number[] {
  return resolveClassLabels(requested, names, numClasses, nullClass, (m) => new UsageError(m));
}

export const QUANTIZE_USAGE = `usage: fresco quantize SRC DST --weights q8|q4
  SRC                  a diffusers folder on disk: a Stable Diffusion pipeline (model_index.json),
                       a class-conditional LDM (unet/ vae/ scheduler/), or one U-Net or ControlNet
  DST                  the folder to write (it must not exist): SRC with the U-Net's (ControlNet's)
                       Linear and conv weights stored quantized, in one plain
                       diffusion_pytorch_model.safetensors; everything else copied as it is
  --weights q8|q4      q8: int8 per output channel (about half the f16 bytes); q4: 4-bit in blocks
                       of 32 (about a quarter). DST loads as any folder and generates exactly what
                       SRC does with generate --weights q8 (q4)
  --help               print this help`;

export interface QuantizeArgs {
  src: string;
  dst: string;
  weights: QuantFormat;
}

export function parseQuantizeArgs(argv: string[]): QuantizeArgs {
  const paths: string[] = [];
  let weights: QuantFormat | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      paths.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (flag !== '--weights') throw new UsageError(`unknown option ${JSON.stringify(arg)}`);
    weights = choice(flag, eq > 0 ? arg.slice(eq + 1) : argv[++i], QUANT_FORMATS, ' or ');
  }
  if (paths.length !== 2) throw new UsageError(`fresco quantize needs SRC and DST folders, got ${paths.length === 0 ? 'none' : paths.map((p) => JSON.stringify(p)).join(' ')}`);
  if (!weights) throw new UsageError('--weights q8 or --weights q4 is required');
  return { src: paths[0]!, dst: paths[1]!, weights };
}
