// The `fresco` command: flags → inspectModel (the folder's JSON, no GPU) → every option checked →
// loadModel → generate → PNG. Model kinds, defaults and batching are the library's; this file only
// turns flags into options and results into a file and a few lines of output.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cannyEdges, generate, inspectModel, loadModel, randomSeed, resolveGenerateOptions, type GenerateOptions, type ModelInfo, type RgbaPixels, type StepEvent } from '../api.ts';
import { decodePng, encodePng, tensorToImage, writeFileNoClobber } from '../io/png.ts';
import { describeClass } from '../pipelines/class_names.ts';
import { mib } from '../pipelines/folder_options.ts';
import { GENERATE_USAGE, parseGenerateArgs, parseQuantizeArgs, QUANTIZE_USAGE, resolveClasses, SDXL_FLAGS, type GenerateArgs } from './args.ts';
import { quantizeFolder } from './quantize.ts';
import { isHubSource } from '../io/hub.ts';
import { ConfigError, GenerateOptionsError, ModelSourceError, PrecisionError, UsageError } from '../errors.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function version(): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

/** A PNG file as RGBA pixels; a missing or unreadable file is a usage error naming the flag. */
async function readPng(flag: string, path: string): Promise<RgbaPixels> {
  if (!existsSync(path)) throw new UsageError(`${flag} ${path} does not exist`);
  try {
    const png = decodePng(new Uint8Array(await readFile(path)));
    return { width: png.width, height: png.height, data: png.pixels };
  } catch (e) {
    throw new UsageError(`${flag} ${path} is not a readable PNG (${(e as Error).message})`);
  }
}

/**
 * A bar redrawn in place on a terminal; in a log (not a TTY) a plain line at each quarter, so
 * no carriage returns end up in files.
 */
let barOpen = false;

function progress(e: StepEvent): void {
  const done = e.index + 1;
  const tail = `${done}/${e.total} t=${e.timestep} ${e.ms.toFixed(0)} ms/step`;
  // bin/fresco.js runs this with stderr piped through a filter; it says whether its own is a terminal.
  if (process.env.FRESCO_STDERR_TTY ? process.env.FRESCO_STDERR_TTY === '1' : process.stderr.isTTY) {
    const width = 30;
    const filled = Math.round((done / e.total) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${tail}`);
    barOpen = done !== e.total;
    if (!barOpen) process.stderr.write('\n');
  } else if (done === e.total || Math.floor((done * 4) / e.total) > Math.floor(((done - 1) * 4) / e.total)) {
    process.stderr.write(`step ${tail}\n`);
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

/** Flags that do not fit the model's kind, as usage errors (before the GPU starts). */
function checkKind(args: GenerateArgs, info: ModelInfo, modelDir: string): void {
  if (info.kind === 'text') {
    if (args.classes.length) throw new UsageError(`${modelDir} is a text-to-image model: it takes --prompt, not --class`);
    if (args.prompt === null) throw new UsageError(`${modelDir} is a text-to-image model: --prompt is required`);
    const xlFlags = SDXL_FLAGS.filter((f) => xlFlagValue(args, f) !== null);
    if (xlFlags.length && !info.xl) throw new UsageError(`${xlFlags.join(', ')} ${xlFlags.length > 1 ? 'apply' : 'applies'} to Stable Diffusion XL pipelines only (${modelDir} is a ${info.pipeline})`);
    if (info.xl && args.initImage !== null) throw new UsageError(`${modelDir} is a Stable Diffusion XL pipeline: --init-image and --mask (img2img, inpainting) are not supported for it`);
  } else {
    if (args.prompt !== null) throw new UsageError(`${modelDir} is class-conditional: it takes --class, not --prompt`);
    if (info.numClasses === null) throw new UsageError(`${modelDir} is not a class-conditional model (its U-Net has no num_class_embeds)`);
  }
}

/** The labels asked for; no --class means every class once (the null class left out). */
function classLabels(args: GenerateArgs, info: ModelInfo): number[] {
  if (args.classes.length) return resolveClasses(args.classes, info.classNames, info.numClasses!, info.nullClass!);
  const n = info.classNames?.length ?? info.numClasses!;
  return Array.from({ length: n }, (_, i) => i).filter((l) => l !== info.nullClass);
}

/** --out must be a new file (or --force) in a folder that exists: a typo must not create folders. */
function checkOut(args: GenerateArgs): void {
  const outDir = dirname(resolve(args.out));
  if (!existsSync(outDir)) throw new UsageError(`--out ${args.out}: the folder ${outDir} does not exist`);
  if (!statSync(outDir).isDirectory()) throw new UsageError(`--out ${args.out}: ${outDir} is not a folder`);
  if (existsSync(args.out) && !args.force) throw new UsageError(`${args.out} already exists; pass --force to overwrite it`);
}

async function generateCommand(argv: string[]): Promise<void> {
  const args = parseGenerateArgs(argv);
  const modelDir = args.model ?? join(root, 'weights/fashion-ldm');
  // A URL or a Hub repository (hf:owner/name) is read over the network, not from the disk.
  const remote = isHubSource(modelDir) || /^https?:\/\//i.test(modelDir);
  if (!remote && !existsSync(modelDir)) throw new UsageError(`model folder ${modelDir} does not exist`);
  const preset = args.preset !== undefined ? { preset: args.preset } : {};
  // Everything that can be checked without the GPU is, in the order a user would fix it.
  const control = args.controlnets.length ? { controlnet: args.controlnets } : {};
  const info = await inspectModel(modelDir, { ...preset, ...control }).catch((e: unknown) => {
    // A malformed hf: source, and a --preset for the other kind of model, are flag mistakes.
    if (e instanceof ModelSourceError || (args.preset && e instanceof ConfigError && e.message.startsWith('preset '))) throw new UsageError(e.message);
    throw e;
  });
  checkKind(args, info, modelDir);
  const labels = info.kind === 'class' ? classLabels(args, info) : [];
  const initImage = args.initImage !== null ? await readPng('--init-image', args.initImage) : undefined;
  const mask = args.mask !== null ? await readPng('--mask', args.mask) : undefined;
  const controlImages = await Promise.all(args.controlImages.map((path) => readPng('--control-image', path)));
  // Without --width/--height a text model generates at the init image's size (the library's rule,
  // as diffusers' img2img); otherwise an init image of another size needs --resize.
  const sized = info.kind === 'class' || args.width !== null || args.height !== null || (!initImage && !controlImages.length);
  const [height, width] = info.kind === 'text' ? [args.height ?? info.imageSize[0], args.width ?? info.imageSize[1]] : info.imageSize;
  for (const [flag, path, img] of [['--init-image', args.initImage, initImage], ['--mask', args.mask, mask]] as const) {
    if (img && sized && !args.resize && (img.width !== width || img.height !== height)) {
      throw new UsageError(`${flag} ${path} is ${img.width}x${img.height}; this model needs ${width}x${height} (pass --resize to resize it)`);
    }
  }
  // Without a size the first control image gives it (the library's rule, as diffusers' ControlNet pipeline); the others must match.
  const [ch, cw] = sized ? [height, width] : [controlImages[0]?.height, controlImages[0]?.width];
  controlImages.forEach((img, k) => {
    if (!args.resize && (img.width !== cw || img.height !== ch)) throw new UsageError(`--control-image ${args.controlImages[k]} is ${img.width}x${img.height}; ${sized ? 'this model needs' : 'the first --control-image is'} ${cw}x${ch} (pass --resize to resize it)`);
  });
  const perNet = (list: number[]) => (list.length === 1 ? list[0]! : list);
  const opts: GenerateOptions = {
    count: args.count,
    seed: args.seed ?? randomSeed(),
    ...(args.steps !== null ? { steps: args.steps } : {}),
    ...(args.guidance !== null ? { guidance: args.guidance } : {}),
    ...(args.scheduler !== null ? { scheduler: args.scheduler } : {}),
    ...(args.eta > 0 ? { eta: args.eta } : {}),
    onStep: progress,
    ...(controlImages.length
      ? {
          controlImage: controlImages,
          resize: args.resize,
          ...(args.controlScales.length ? { controlScale: perNet(args.controlScales) } : {}),
          ...(args.controlStarts.length ? { controlStart: perNet(args.controlStarts) } : {}),
          ...(args.controlEnds.length ? { controlEnd: perNet(args.controlEnds) } : {}),
        }
      : {}),
    ...(initImage ? { initImage, resize: args.resize, ...(args.strength !== null ? { strength: args.strength } : {}), ...(mask ? { mask } : {}) } : {}),
    ...(info.kind === 'class'
      ? { class: labels }
      : {
          prompt: args.prompt!,
          ...(args.width !== null ? { width: args.width } : {}),
          ...(args.height !== null ? { height: args.height } : {}),
          ...(args.negativePrompt !== null ? { negativePrompt: args.negativePrompt } : {}),
          ...(args.prompt2 !== null ? { prompt2: args.prompt2 } : {}),
          ...(args.negativePrompt2 !== null ? { negativePrompt2: args.negativePrompt2 } : {}),
          ...(args.originalSize ? { originalSize: args.originalSize } : {}),
          ...(args.cropTopLeft ? { cropsCoordsTopLeft: args.cropTopLeft } : {}),
          ...(args.targetSize ? { targetSize: args.targetSize } : {}),
        }),
  };
  // The library's own checks and defaults, still before the GPU: steps × strength, eta with the
  // model's default scheduler, and the rest.
  const o = resolveGenerateOptions(info, opts, modelDir);
  checkOut(args);

  let model;
  try {
    model = await loadModel(modelDir, { precision: args.precision, ...(args.weights ? { weights: args.weights } : {}), ...preset, ...control });
  } catch (e) {
    if (e instanceof PrecisionError) throw new Error(`--precision f16 needs the WebGPU feature shader-f16, which this adapter does not have (use --precision auto or f32)`);
    throw e;
  }
  try {
    console.error(`adapter: ${model.adapterName}`);
    console.error(`precision: ${model.precision}`);
    for (const l of args.loras) {
      const info = await model.loadLora(l.file, { scale: l.scale, name: `lora-${args.loras.indexOf(l) + 1}` });
      console.error(`LoRA ${l.file} at scale ${l.scale}: ${Object.entries(info.layers).map(([c, n]) => `${n} ${c} layers`).join(', ')}`);
      if (info.skipped.length) console.error(`  skipped, as diffusers skips them: ${info.skipped.join(', ')}`);
    }
    if (info.preset) console.error(`preset: ${info.preset.name} (${{ option: 'asked for', repo: 'its Hub repository', config: 'its configs' }[info.preset.source]})`);
    const init = initImage ? `; ${mask ? 'inpainting' : 'img2img'} from ${args.initImage}, strength ${o.init?.strength}` : '';
    const steer = o.control ? `; ${o.control.weights.map((w, k) => `ControlNet ${args.controlnets[k]} on ${args.controlImages[k]} (scale ${w.scale}${w.start > 0 || w.end < 1 ? `, steps ${w.start}-${w.end}` : ''})`).join(', ')}` : '';
    const run = `seed ${o.seed}, ${o.steps} ${o.scheduler} steps, guidance ${o.guidance}${init}${steer}`;
    if (info.kind === 'class') {
      console.error(`generating ${o.batch} image(s): ${labels.map((l) => describeClass(l, info.classNames, info.nullClass!)).join(', ')}; ${run}`);
    } else {
      const sd = model.loaded.kind === 'text' ? model.loaded.sd : null;
      if (sd?.xl && sd.vae.precision.dtype !== sd.unet.precision.dtype) console.error(`the VAE decodes in ${sd.vae.precision.dtype} (its config's force_upcast, as StableDiffusionXLPipeline)`);
      console.error(`generating ${o.batch} image(s) of ${JSON.stringify(args.prompt)}${args.negativePrompt ? ` (negative: ${JSON.stringify(args.negativePrompt)})` : ''}, ${o.width}x${o.height}; ${run}${describeXl(args)}`);
    }
    if (args.canny && opts.controlImage) {
      // Same sizes in and out: the options checked above still hold.
      const [low, high] = args.canny;
      opts.controlImage = await Promise.all((opts.controlImage as RgbaPixels[]).map((img) => cannyEdges(img, { low, high })));
      console.error(`control image${controlImages.length > 1 ? 's' : ''}: Canny edges (${low}, ${high})`);
    }
    const result = await generate(model, opts);
    if (result.truncated?.length) console.error(`note: the prompt was cut to the text encoder's token limit`);
    const img = tensorToImage(result.raw, result.rawShape, { cols: result.columns });
    await writeFileNoClobber(args.out, encodePng(img.width, img.height, img.channels, img.pixels), args.force);
    const mean = result.stepMs.reduce((a, b) => a + b, 0) / result.stepMs.length;
    console.error(`wrote ${args.out} (${img.width}x${img.height})`);
    console.error(`adapter ${model.adapterName}; ${mean.toFixed(1)} ms per U-Net call (batch ${o.batch}${o.guidance > 1 && !info.guidanceEmbedded ? ' ×2 for guidance' : ''}); total ${(result.totalMs / 1000).toFixed(2)} s; peak GPU memory ${mib(result.peakBytes)}`);
  } finally {
    model.destroy();
  }
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === '--version' || cmd === '-v' || (cmd === 'generate' && rest.includes('--version'))) return void console.log(`fresco ${version()}`);
  if (cmd === 'generate') {
    if (rest.includes('--help') || rest.includes('-h')) return void console.log(GENERATE_USAGE);
    return generateCommand(rest);
  }
  if (cmd === 'quantize') {
    if (rest.includes('--help') || rest.includes('-h')) return void console.log(QUANTIZE_USAGE);
    const args = parseQuantizeArgs(rest);
    await quantizeFolder(args.src, args.dst, args.weights, (line) => console.error(line));
    return;
  }
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(`fresco ${version()} — latent diffusion on WebGPU\n\n${GENERATE_USAGE}\n\n${QUANTIZE_USAGE}`);
    return;
  }
  throw new UsageError(`unknown command ${JSON.stringify(cmd)} (the commands are: fresco generate, fresco quantize)`);
}

/** Exits once stdout and stderr are flushed: a pipe (bin/fresco.js, `2>&1 | tee`) is written asynchronously. */
function exit(code: number, message?: string): void {
  // An error ends a half-drawn progress bar's line first.
  const text = message === undefined ? '' : `${barOpen ? '\n' : ''}${message}\n`;
  process.stdout.write('', () => process.stderr.write(text, () => process.exit(code)));
}

main().then(
  () => exit(0),
  (e: unknown) => {
    const err = e as Error;
    if (err instanceof UsageError || err instanceof GenerateOptionsError) return exit(2, `error: ${err.message}\nrun with --help for the options`);
    exit(1, `error: ${err?.message ?? err}`);
  },
);
