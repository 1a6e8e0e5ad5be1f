// Flag parsing for `fresco generate`, kept apart from running so bad input is a usage error
// before any GPU work starts.

import type { SchedulerName } from '../schedulers/scheduler.ts';
import { PRECISIONS, type Precision } from '../models/precision.ts';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

// Listed here rather than imported so the argument parser stays free of GPU code; `satisfies` keeps
// it in step with the scheduler factory's names.
const CLI_SCHEDULERS = ['ddim', 'ddpm', 'euler-a', 'euler', 'lcm', 'dpm++2m', 'pndm'] as const satisfies readonly SchedulerName[];
type CliSchedulerName = (typeof CLI_SCHEDULERS)[number];

export interface GenerateArgs {
  classes: string[];
  count: number;
  seed: number | null;
  steps: number | null;
  guidance: number | null;
  scheduler: CliSchedulerName | null;
  eta: number;
  model: string | null;
  out: string;
  force: boolean;
  initImage: string | null;
  strength: number | null;
  mask: string | null;
  precision: Precision;
  /** Text-to-image (Stable Diffusion folders): the prompt, and the negative prompt. */
  prompt: string | null;
  negativePrompt: string | null;
  width: number | null;
  height: number | null;
}

export const GENERATE_USAGE = `usage: fresco generate [options]
  --model DIR          diffusers-layout folder: a class-conditional LDM (unet/ vae/ scheduler/) or a
                       Stable Diffusion 1.x/2.x or XL pipeline (model_index.json) (default
                       weights/fashion-ldm)
  --class NAME|INDEX   class to draw, class-conditional models (repeatable; default: every class once)
  --prompt TEXT        what to draw, text-to-image models (required for them)
  --negative-prompt TEXT  what to steer away from (text-to-image; default none)
  --width W --height H image size in pixels (text-to-image; default the model's)
  --count N            images per class or prompt (default 1)
  --seed N             RNG seed (default: random, printed)
  --steps N            denoising steps (default from the model card, else 25)
  --guidance G         classifier-free guidance scale (default from the model card, else 3;
                       text-to-image 7.5, Stable Diffusion XL 5)
  --scheduler ddim|ddpm|euler-a|euler|lcm|dpm++2m|pndm  (default from the model card, else the
                       folder's own scheduler for text-to-image, ddim otherwise)
  --eta E              DDIM eta (default 0; DDIM only)
  --out FILE.png       output PNG, a grid when several images (default fresco.png)
  --force              overwrite FILE.png if it exists
  --init-image FILE.png  img2img: start from this image (gray or RGB, the model's image size;
                       not with Stable Diffusion XL)
  --strength S         how far to noise the init image, 0 < S <= 1 (default 0.8; needs --init-image)
  --mask FILE.png      inpaint: white pixels are repainted, black kept (needs --init-image)
  --precision auto|f16|f32  weights and activations in f16 where the GPU has shader-f16 (auto,
                       the default), always (f16: an error without it) or never (f32)`;

function int(flag: string, v: string | undefined, min: number, max: number): number {
  if (v === undefined || !/^-?\d+$/.test(v)) throw new UsageError(`${flag} needs an integer, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function num(flag: string, v: string | undefined, min: number, max: number): number {
  const n = v === undefined ? NaN : Number(v);
  if (!Number.isFinite(n) || v!.trim() === '') throw new UsageError(`${flag} needs a number, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  if (n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function parseGenerateArgs(argv: string[]): GenerateArgs {
  const a: GenerateArgs = { classes: [], count: 1, seed: null, steps: null, guidance: null, scheduler: null, eta: 0, model: null, out: 'fresco.png', force: false, initImage: null, strength: null, mask: null, precision: 'auto', prompt: null, negativePrompt: null, width: null, height: null };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i]!;
    let value: string | undefined;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    }
    const next = () => value ?? argv[++i];
    switch (flag) {
      case '--class': {
        const v = next();
        if (!v) throw new UsageError('--class needs a class name or index');
        a.classes.push(v);
        break;
      }
      case '--prompt':
      case '--negative-prompt': {
        const v = next();
        if (v === undefined) throw new UsageError(`${flag} needs a text`);
        if (flag === '--prompt') a.prompt = v;
        else a.negativePrompt = v;
        break;
      }
      case '--width': a.width = int(flag, next(), 8, 4096); break;
      case '--height': a.height = int(flag, next(), 8, 4096); break;
      case '--count': a.count = int(flag, next(), 1, 64); break;
      case '--seed': a.seed = int(flag, next(), 0, 2 ** 32 - 1); break;
      case '--steps': a.steps = int(flag, next(), 1, 1000); break;
      case '--guidance': a.guidance = num(flag, next(), 0, 100); break;
      case '--eta': a.eta = num(flag, next(), 0, 1); break;
      case '--scheduler': {
        const v = next();
        const name = CLI_SCHEDULERS.find((s) => s === v);
        if (!name) throw new UsageError(`--scheduler must be ${CLI_SCHEDULERS.join(', ')}, got ${JSON.stringify(v)}`);
        a.scheduler = name;
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
      case '--init-image':
      case '--mask': {
        const v = next();
        if (!v || !v.toLowerCase().endsWith('.png')) throw new UsageError(`${flag} needs a .png file, got ${JSON.stringify(v ?? null)}`);
        if (flag === '--mask') a.mask = v;
        else a.initImage = v;
        break;
      }
      case '--precision': {
        const v = next();
        const p = PRECISIONS.find((x) => x === v);
        if (!p) throw new UsageError(`--precision must be ${PRECISIONS.join(', ')}, got ${JSON.stringify(v ?? null)}`);
        a.precision = p;
        break;
      }
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
  if (a.prompt !== null && a.classes.length) throw new UsageError('--prompt and --class do not go together: a model is either text- or class-conditional');
  if (a.prompt === null && (a.negativePrompt !== null || a.width !== null || a.height !== null)) throw new UsageError('--negative-prompt, --width and --height need --prompt');
  return a;
}

/** Resolves class names (case-insensitive, or a unique prefix) and indices to labels. */
export function resolveClasses(requested: string[], names: string[] | null, numClasses: number): number[] {
  return requested.map((r) => {
    if (/^\d+$/.test(r)) {
      const n = Number(r);
      if (n >= numClasses) throw new UsageError(`class index ${n} is out of range (0..${numClasses - 1})`);
      return n;
    }
    if (!names) throw new UsageError(`this model has no class names; use an index 0..${numClasses - 1}`);
    const key = r.toLowerCase();
    const exact = names.findIndex((n) => n.toLowerCase() === key);
    if (exact >= 0) return exact;
    const partial = names.map((n, i) => [n, i] as const).filter(([n]) => n.toLowerCase().startsWith(key) || n.toLowerCase().split('/').includes(key));
    if (partial.length === 1) return partial[0]![1];
    throw new UsageError(`unknown class ${JSON.stringify(r)}${partial.length > 1 ? ' (ambiguous)' : ''}; classes: ${names.map((n, i) => `${i} ${n}`).join(', ')}`);
  });
}
