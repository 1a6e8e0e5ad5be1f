// The `fresco` command.
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpu } from '../gpu/device.ts';
import { Runtime } from '../gpu/runtime.ts';
import { readJson } from '../io/model_folder.ts';
import { decodePng, encodePng, tensorToImage, writeFileNoClobber } from '../io/png.ts';
import { generateClassConditional, type GenerationResult, type StepInfo } from '../pipelines/class_conditional.ts';
import { loadSdFolder } from '../pipelines/sd_folder.ts';
import { generateFromText } from '../pipelines/text_to_image.ts';
import { schedulerNameOf } from '../schedulers/scheduler.ts';
import { loadLdmFolder } from '../pipelines/ldm_folder.ts';
import { PrecisionError, resolvePrecision } from '../models/precision.ts';
import { describeClass } from '../pipelines/class_names.ts';
import { GENERATE_USAGE, parseGenerateArgs, resolveClasses, SDXL_FLAGS, UsageError, type GenerateArgs } from './args.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface ModelCard {
  class_names?: string[];
  null_class?: number;
  defaults?: { steps?: number; guidance?: number; scheduler?: 'ddim' | 'ddpm' | 'euler-a' };
}

/**
 * A PNG as one image [C, height, width] in [-1, 1] (diffusers' 2·(pixel/255) − 1), gray by PIL's
 * convert('L') weights when C = 1; or, for a mask, 1 where the pixel is white (≥ 0.5), else 0.
 */
async function readImage(flag: string, path: string, [width, height]: readonly [number, number], channels: number, kind: 'image' | 'mask'): Promise<Float32Array> {
  if (!existsSync(path)) throw new UsageError(`${flag} ${path} does not exist`);
  let png: ReturnType<typeof decodePng>;
  try {
    png = decodePng(new Uint8Array(await readFile(path)));
  } catch (e) {
    throw new UsageError(`${flag} ${path} is not a readable PNG (${(e as Error).message})`);
  }
  if (png.width !== width || png.height !== height) throw new UsageError(`${flag} ${path} is ${png.width}x${png.height}; this model needs ${width}x${height}`);
  const px = png.pixels;
  const n = width * height;
  // PIL's fixed-point ITU-R 601-2 luma, exact for gray pixels.
  const luma = (p: number) => (px[4 * p]! * 19595 + px[4 * p + 1]! * 38470 + px[4 * p + 2]! * 7471 + 0x8000) >>> 16;
  if (kind === 'mask') return Float32Array.from({ length: n }, (_, p) => (luma(p) / 255 >= 0.5 ? 1 : 0));
  const out = new Float32Array(channels * n);
  for (let c = 0; c < channels; c++)
    for (let p = 0; p < n; p++) {
      const v = channels === 1 ? luma(p) : px[4 * p + Math.min(c, 2)]!;
      out[c * n + p] = Math.fround(Math.fround(v / 255) * 2 - 1);
    }
  return out;
}

/** One image repeated over the batch. */
function repeat(x: Float32Array, times: number): Float32Array {
  const out = new Float32Array(x.length * times);
  for (let i = 0; i < times; i++) out.set(x, i * x.length);
  return out;
}

function progress(info: StepInfo): void {
  const width = 30;
  const done = Math.round(((info.index + 1) / info.total) * width);
  const bar = '#'.repeat(done) + '-'.repeat(width - done);
  process.stderr.write(`\r[${bar}] ${info.index + 1}/${info.total} t=${info.timestep} ${info.ms.toFixed(0)} ms/step`);
  if (info.index + 1 === info.total) process.stderr.write('\n');
}

interface Common {
  args: GenerateArgs;
  rt: Runtime;
  adapter: string;
  seed: number;
}

/** --init-image / --mask as [B, C, H, W] and [B, 1, H, W] arrays, each PNG repeated over the batch. */
async function initInputs(args: GenerateArgs, size: readonly [number, number], channels: number, batch: number) {
  if (!args.initImage) return {};
  const initImage = repeat(await readImage('--init-image', args.initImage, size, channels, 'image'), batch);
  const mask = args.mask ? repeat(await readImage('--mask', args.mask, size, 1, 'mask'), batch) : undefined;
  return { initImage, mask, strength: args.strength ?? 0.8 };
}

async function finish(c: Common, result: GenerationResult, batch: number, guidance: number): Promise<void> {
  const cols = c.args.count > 1 ? c.args.count : Math.ceil(Math.sqrt(batch));
  const img = tensorToImage(result.image, result.imageShape, { cols });
  await writeFileNoClobber(c.args.out, encodePng(img.width, img.height, img.channels, img.pixels), c.args.force);
  const mean = result.stepMs.reduce((a, b) => a + b, 0) / result.stepMs.length;
  console.error(`wrote ${c.args.out} (${img.width}x${img.height})`);
  console.error(`adapter ${c.adapter}; ${mean.toFixed(1)} ms/step (batch ${batch}${guidance > 1 ? ' ×2 for guidance' : ''}); total ${(result.totalMs / 1000).toFixed(2)} s; peak GPU memory ${(result.peakBytes / 2 ** 20).toFixed(1)} MiB`);
}

function describeInit(args: GenerateArgs, init: { initImage?: unknown; mask?: unknown; strength?: number }): string {
  return init.initImage ? `; ${init.mask ? 'inpainting' : 'img2img'} from ${args.initImage}, strength ${init.strength}` : '';
}

async function generateClasses(c: Common, modelDir: string, card: ModelCard): Promise<void> {
  const { args, rt } = c;
  if (args.prompt !== null) throw new UsageError(`${modelDir} is class-conditional: it takes --class, not --prompt`);
  const model = await loadLdmFolder(rt, modelDir, { precision: args.precision });
  try {
    const numClasses = model.unet.numClasses;
    if (numClasses === null) throw new UsageError(`${modelDir} is not a class-conditional model`);
    const nullClass = card.null_class ?? numClasses - 1;
    const names = card.class_names ?? null;
    const labels = args.classes.length
      ? resolveClasses(args.classes, names, numClasses, nullClass)
      : Array.from({ length: names?.length ?? numClasses - 1 }, (_, i) => i);
    const batch = labels.flatMap((l) => new Array<number>(args.count).fill(l));
    const steps = args.steps ?? card.defaults?.steps ?? 25;
    const guidance = args.guidance ?? card.defaults?.guidance ?? 3;
    const scheduler = args.scheduler ?? card.defaults?.scheduler ?? 'ddim';
    const side = model.unet.sampleSize * model.vae.scaleFactor;
    const init = await initInputs(args, [side, side], model.vae.inChannels, batch.length);
    console.error(`generating ${batch.length} image(s): ${labels.map((l) => describeClass(l, names, nullClass)).join(', ')}; seed ${c.seed}, ${steps} ${scheduler} steps, guidance ${guidance}${describeInit(args, init)}`);
    const result = await generateClassConditional(rt, model, { classLabels: batch, nullClass, guidanceScale: guidance, steps, scheduler, eta: args.eta, seed: c.seed, ...init, onStep: progress });
    await finish(c, result, batch.length, guidance);
  } finally {
    model.destroy();
  }
}

function xlFlagValue(args: GenerateArgs, flag: (typeof SDXL_FLAGS)[number]): unknown {
  const values = { '--prompt-2': args.prompt2, '--negative-prompt-2': args.negativePrompt2, '--original-size': args.originalSize, '--crop-top-left': args.cropTopLeft, '--target-size': args.targetSize };
  return values[flag];
}

/** The SDXL flags given, in the CLI's own syntax (sizes WxH). */
function describeXl(args: GenerateArgs): string {
  const wxh = (s: [number, number]) => `${s[1]}x${s[0]}`;
  const parts = [
    args.prompt2 !== null ? `prompt 2 ${JSON.stringify(args.prompt2)}` : '',
    args.negativePrompt2 !== null ? `negative prompt 2 ${JSON.stringify(args.negativePrompt2)}` : '',
    args.originalSize ? `original size ${wxh(args.originalSize)}` : '',
    args.cropTopLeft ? `crop top-left ${args.cropTopLeft.join(',')}` : '',
    args.targetSize ? `target size ${wxh(args.targetSize)}` : '',
  ].filter(Boolean);
  return parts.length ? `; ${parts.join(', ')}` : '';
}

async function generateText(c: Common, modelDir: string): Promise<void> {
  const { args, rt } = c;
  if (args.classes.length) throw new UsageError(`${modelDir} is a text-to-image model: it takes --prompt, not --class`);
  if (args.prompt === null) throw new UsageError(`${modelDir} is a text-to-image model: --prompt is required`);
  const model = await loadSdFolder(rt, modelDir, { precision: args.precision });
  try {
    if (model.xl && args.initImage !== null) throw new UsageError(`${modelDir} is a Stable Diffusion XL pipeline: --init-image and --mask (img2img, inpainting) are not supported for it`);
    if (model.xl && model.vae.precision.dtype !== model.unet.precision.dtype) console.error(`the VAE decodes in ${model.vae.precision.dtype} (its config's force_upcast, as StableDiffusionXLPipeline)`);
    const f = model.vae.scaleFactor;
    const width = args.width ?? model.unet.sampleSize * f;
    const height = args.height ?? model.unet.sampleSize * f;
    if (width % f || height % f) throw new UsageError(`--width and --height must be multiples of ${f} for this model, got ${width}x${height}`);
    const prompts = new Array<string>(args.count).fill(args.prompt);
    const steps = args.steps ?? 50;
    // diffusers' default guidance_scale: 7.5 for StableDiffusionPipeline, 5 for StableDiffusionXLPipeline.
    const guidance = args.guidance ?? (model.xl ? 5 : 7.5);
    const scheduler = args.scheduler ?? schedulerNameOf(model.schedulerConfig);
    const init = await initInputs(args, [width, height], model.vae.inChannels, prompts.length);
    console.error(`generating ${prompts.length} image(s) of ${JSON.stringify(args.prompt)}${args.negativePrompt ? ` (negative: ${JSON.stringify(args.negativePrompt)})` : ''}, ${width}x${height}; seed ${c.seed}, ${steps} ${scheduler} steps, guidance ${guidance}${describeInit(args, init)}${describeXl(args)}`);
    const result = await generateFromText(rt, model, {
      prompt: prompts,
      ...(args.negativePrompt !== null ? { negativePrompt: args.negativePrompt } : {}),
      ...(args.prompt2 !== null ? { prompt2: args.prompt2 } : {}),
      ...(args.negativePrompt2 !== null ? { negativePrompt2: args.negativePrompt2 } : {}),
      ...(args.originalSize ? { originalSize: args.originalSize } : {}),
      ...(args.cropTopLeft ? { cropsCoordsTopLeft: args.cropTopLeft } : {}),
      ...(args.targetSize ? { targetSize: args.targetSize } : {}),
      width,
      height,
      guidanceScale: guidance,
      steps,
      scheduler,
      eta: args.eta,
      seed: c.seed,
      ...init,
      onStep: progress,
    });
    if (result.truncated.length) console.error(`note: the prompt was cut to the tokenizer's ${model.tokenizer.maxLength} tokens`);
    await finish(c, result, prompts.length, guidance);
  } finally {
    model.destroy();
  }
}

async function generate(argv: string[]): Promise<void> {
  const args = parseGenerateArgs(argv);
  const modelDir = args.model ?? join(root, 'weights/fashion-ldm');
  if (!existsSync(modelDir)) throw new UsageError(`model folder ${modelDir} does not exist`);
  if (existsSync(args.out) && !args.force) throw new UsageError(`${args.out} already exists; pass --force to overwrite it`);
  // The PNG goes into an existing folder only: a typo in --out must not create folders.
  const outDir = dirname(resolve(args.out));
  if (!existsSync(outDir)) throw new UsageError(`--out ${args.out}: the folder ${outDir} does not exist`);
  if (!statSync(outDir).isDirectory()) throw new UsageError(`--out ${args.out}: ${outDir} is not a folder`);
  const text = existsSync(join(modelDir, 'model_index.json'));
  if (text && args.prompt === null) throw new UsageError(`${modelDir} is a text-to-image model: --prompt is required`);
  if (!text && args.prompt !== null) throw new UsageError(`${modelDir} is class-conditional: it takes --class, not --prompt`);
  const xlFlags = SDXL_FLAGS.filter((f) => xlFlagValue(args, f) !== null);
  if (text && xlFlags.length) {
    const pipeline = (await readJson(join(modelDir, 'model_index.json')))._class_name ?? 'StableDiffusionPipeline';
    if (pipeline !== 'StableDiffusionXLPipeline') throw new UsageError(`${xlFlags.join(', ')} ${xlFlags.length > 1 ? 'apply' : 'applies'} to Stable Diffusion XL pipelines only (${modelDir} is a ${String(pipeline)})`);
  }
  const cardPath = join(modelDir, 'fresco.json');
  const card: ModelCard = existsSync(cardPath) ? ((await readJson(cardPath)) as ModelCard) : {};

  const gpu = await getGpu({ wantF16: args.precision !== 'f32' });
  const rt = new Runtime(gpu);
  console.error(`adapter: ${gpu.adapterName}`);
  // Before any weight is read: asking for f16 on a device without shader-f16 fails here.
  let precision: string;
  try {
    precision = resolvePrecision(gpu.features, args.precision).description;
  } catch (e) {
    if (e instanceof PrecisionError) throw new Error(`--precision f16 needs the WebGPU feature shader-f16, which ${gpu.adapterName} does not have (use --precision auto or f32)`);
    throw e;
  }
  console.error(`precision: ${precision}`);
  const c: Common = { args, rt, adapter: gpu.adapterName, seed: args.seed ?? Math.floor(Math.random() * 2 ** 31) };
  if (text) await generateText(c, modelDir);
  else await generateClasses(c, modelDir, card);
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === 'generate') {
    if (rest.includes('--help') || rest.includes('-h')) return void console.log(GENERATE_USAGE);
    return generate(rest);
  }
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(`fresco — latent diffusion on WebGPU\n\n${GENERATE_USAGE}`);
    return;
  }
  throw new UsageError(`unknown command ${JSON.stringify(cmd)} (the command is: fresco generate)`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    const err = e as Error;
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\nrun with --help for the options`);
      process.exit(2);
    }
    console.error(`error: ${err?.message ?? err}`);
    process.exit(1);
  },
);
