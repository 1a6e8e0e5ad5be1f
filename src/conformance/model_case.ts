// Runs one diffusers model case (config + weights + io.safetensors) and measures the error.
// Besides the inputs ../shared/fixtures/README.md lists, io.safetensors may hold `timestep_cond`
// (time_cond_proj_dim U-Nets) and `text_embeds` [B, P] / `time_ids` [B, N] (f32, diffusers'
// added_cond_kwargs for addition_embed_type 'text_time', SDXL); each one present is passed to the
// model (scripts/reference/README.md, "Inputs of the variant model cases").
import { join } from 'node:path';
import type { Runtime } from '../gpu/runtime.ts';
import { Graph } from '../graph/graph.ts';
import { numel, type Tensor } from '../graph/tensor.ts';
import { loadModelFolder, nodeFolderReader, readJson, type ModelFolder } from '../io/model_folder.ts';
import { readSafetensorsFile, toFloat32, toInt64Numbers, type HostTensor } from '../io/safetensors.ts';
import { castTo } from '../kernels/cast.ts';
import { ControlNetModel } from '../models/controlnet.ts';
import { readControlNetConfig } from '../models/controlnet_config.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../models/autoencoder_kl_config.ts';
import { AutoencoderTiny } from '../models/autoencoder_tiny.ts';
import { readAutoencoderTinyConfig } from '../models/autoencoder_tiny_config.ts';
import { readClipTextConfig } from '../models/clip_text_config.ts';
import { CLIPTextModel, CLIPTextModelWithProjection, readClipTextFolder } from '../models/clip_text_model.ts';
import { uploadIds } from '../kernels/embedding.ts';
import { buildModel } from '../models/model_loader.ts';
import { UNet2DModel } from '../models/unet_2d.ts';
import { readUNet2DConfig } from '../models/unet_2d_config.ts';
import { UNet2DConditionModel } from '../models/unet_2d_condition.ts';
import { readUNet2DConditionConfig } from '../models/unet_2d_condition_config.ts';
import { VQModel } from '../models/vq_model.ts';
import { readVQModelConfig } from '../models/vq_model_config.ts';
import { resolvePrecision, type ModelOptions, type Precision, type WeightFormat } from '../models/precision.ts';
import { measure, Unsupported, worst, type Measured } from './measure.ts';

function upload(rt: Runtime, t: HostTensor, label: string): Tensor {
  return { buffer: rt.upload(toFloat32(t), label), shape: t.shape, label };
}

function need(io: Map<string, HostTensor>, key: string, dir: string): HostTensor {
  const t = io.get(key);
  if (!t) throw new Error(`${dir}/io.safetensors has no tensor '${key}'`);
  return t;
}

interface CaseInputs {
  /** Uploads io.safetensors[key] (tracked, freed after the case). */
  tensor(key: string): Tensor;
  /** Whether io.safetensors has `key`. */
  has(key: string): boolean;
  /** The U-Net timestep input: one f32 per batch element (a single value is broadcast). */
  timesteps(batch: number): Tensor;
  /**
   * io.safetensors 'class_labels', when the case has them, uploaded the way `model` takes them
   * (class ids, label values for 'timestep' or embedding rows for 'identity').
   */
  classLabels(model: ClassLabelled, batch: number): Tensor | undefined;
  /** io.safetensors[key] (integer token ids) as u32, checked to lie in [0, num); `values` instead of the file's, when given. */
  ids(key: string, num: number, values?: number[]): Tensor;
  /** io.safetensors[key] (integers [B, T]) as rows. */
  intRows(key: string): number[][];
  /** io.safetensors[key] on the host, as f32 values. */
  values(key: string): Float32Array;
}

interface ClassLabelled {
  uploadClassLabels(rt: Runtime, values: ArrayLike<number>, batch: number): Tensor;
}

interface Built {
  /** The output compared with io.safetensors 'out', or several, by io.safetensors key. */
  out: Tensor | Record<string, Tensor>;
  destroy(): void;
}

/** `opts`: the precision, and `weights` where the run quantizes the GEMM weights (runModelCase). */
type CaseRunner = (rt: Runtime, folder: ModelFolder, dir: string, g: Graph, io: CaseInputs, opts: ModelOptions) => Built;

/** Models with one input tensor and one method call: decode(latents), encode(image). */
function unary<M extends { destroy(): void }>(make: (rt: Runtime, f: ModelFolder, dir: string, opts: ModelOptions) => M, call: (m: M, g: Graph, x: Tensor) => Tensor, input: string): CaseRunner {
  return (rt, folder, dir, g, io, opts) => {
    const m = make(rt, folder, dir, opts);
    return { out: call(m, g, io.tensor(input)), destroy: () => m.destroy() };
  };
}

function isTensor(x: Tensor | Record<string, Tensor>): x is Tensor {
  return 'buffer' in x && 'shape' in x && Array.isArray(x.shape);
}

/** diffusers class.call → how Fresco runs it. */
const RUNNERS: Record<string, CaseRunner> = {
  'UNet2DModel.forward': (rt, folder, dir, g, io, opts) => {
    const unet = buildModel(UNet2DModel, rt, folder.weights, readUNet2DConfig(folder.config, dir), opts);
    const sample = io.tensor('sample');
    const B = sample.shape[0]!;
    return { out: unet.forward(g, sample, { timesteps: io.timesteps(B), broadcast: false, classLabels: io.classLabels(unet, B) }), destroy: () => unet.destroy() };
  },
  'UNet2DConditionModel.forward': (rt, folder, dir, g, io, opts) => {
    const unet = buildModel(UNet2DConditionModel, rt, folder.weights, readUNet2DConditionConfig(folder.config, dir), opts);
    const sample = io.tensor('sample');
    const B = sample.shape[0]!;
    const classLabels = io.classLabels(unet, B);
    // timestep_cond (time_cond_proj_dim models, e.g. LCM-distilled U-Nets), when the case has one.
    const timestepCond = io.has('timestep_cond') ? io.tensor('timestep_cond') : undefined;
    // added_cond_kwargs text_embeds and time_ids (addition_embed_type 'text_time', SDXL), when the case has them.
    const textEmbeds = io.has('text_embeds') ? io.tensor('text_embeds') : undefined;
    const timeIds = io.has('time_ids') ? io.tensor('time_ids') : undefined;
    // down_block_additional_residuals.{i} and mid_block_additional_residual (a ControlNet's output), when the case has them.
    const control = io.has('mid_block_additional_residual')
      ? [{ down: Array.from({ length: unet.numSkips }, (_, i) => io.tensor(`down_block_additional_residuals.${i}`)), mid: io.tensor('mid_block_additional_residual') }]
      : [];
    return { out: unet.forward(g, sample, { timesteps: io.timesteps(B), broadcast: false, classLabels, timestepCond, textEmbeds, timeIds }, io.tensor('encoder_hidden_states'), control), destroy: () => unet.destroy() };
  },
  // Every residual: down_block_res_samples.{i} and mid_block_res_sample (conditioning_scale from io, default 1).
  'ControlNetModel.forward': (rt, folder, dir, g, io, opts) => {
    const net = buildModel(ControlNetModel, rt, folder.weights, readControlNetConfig(folder.config, dir), opts);
    const sample = io.tensor('sample');
    const B = sample.shape[0]!;
    const classLabels = io.classLabels(net, B);
    const textEmbeds = io.has('text_embeds') ? io.tensor('text_embeds') : undefined;
    const timeIds = io.has('time_ids') ? io.tensor('time_ids') : undefined;
    const conditioningScale = io.has('conditioning_scale') ? io.values('conditioning_scale')[0]! : 1;
    const r = net.forward(g, sample, { timesteps: io.timesteps(B), broadcast: false, classLabels, textEmbeds, timeIds }, io.tensor('encoder_hidden_states'), io.tensor('controlnet_cond'), { conditioningScale });
    const f32 = (t: Tensor, key: string) => castTo(g, key, t, 'f32');
    const out: Record<string, Tensor> = Object.fromEntries(r.down.map((t, i) => [`down_block_res_samples.${i}`, f32(t, `down_block_res_samples.${i}`)]));
    out.mid_block_res_sample = f32(r.mid, 'mid_block_res_sample');
    return { out, destroy: () => net.destroy() };
  },
  'AutoencoderKL.decode': unary((rt, f, d, opts) => buildModel(AutoencoderKL, rt, f.weights, readAutoencoderKLConfig(f.config, d), opts), (m, g, x) => m.decode(g, x), 'latents'),
  'AutoencoderKL.encode': unary((rt, f, d, opts) => buildModel(AutoencoderKL, rt, f.weights, readAutoencoderKLConfig(f.config, d), opts), (m, g, x) => m.encodeMean(g, x), 'image'),
  'AutoencoderTiny.decode': unary((rt, f, d, opts) => buildModel(AutoencoderTiny, rt, f.weights, readAutoencoderTinyConfig(f.config, d), opts), (m, g, x) => m.decode(g, x), 'latents'),
  'VQModel.decode': unary((rt, f, d, opts) => buildModel(VQModel, rt, f.weights, readVQModelConfig(f.config, d), opts), (m, g, x) => m.decode(g, x), 'latents'),
  'CLIPTextModel.encode': (rt, folder, dir, g, io, opts) => {
    const m = buildModel(CLIPTextModel, rt, folder.weights, readClipTextConfig(folder.config, dir), opts);
    const r = m.encode(g, io.ids('input_ids', m.vocabSize));
    return { out: { last_hidden_state: r.lastHiddenState, hidden_state_penultimate: r.penultimate }, destroy: () => m.destroy() };
  },
  // text_embeds: the pooled row (poolRows, from the host ids) through text_projection.
  'CLIPTextModelWithProjection.encode': (rt, folder, dir, g, io, opts) => {
    const m = buildModel(CLIPTextModelWithProjection, rt, folder.weights, readClipTextConfig(folder.config, dir, true), opts);
    const ids = io.ids('input_ids', m.vocabSize);
    const host = io.intRows('input_ids');
    const pool = io.ids('pool_rows', ids.shape[0]! * ids.shape[1]!, m.poolRows(host));
    const r = m.encode(g, ids, { pool });
    return { out: { text_embeds: r.textEmbeds!, last_hidden_state: r.lastHiddenState, hidden_state_penultimate: r.penultimate }, destroy: () => m.destroy() };
  },
};

/** Classes whose folder is not a diffusers one (config.json + diffusion_pytorch_model.safetensors). */
const FOLDERS: Record<string, (dir: string) => Promise<ModelFolder>> = {
  CLIPTextModel: (dir) => readClipTextFolder(nodeFolderReader(dir), dir),
  // case.json may name the model folder (a pipeline's text_encoder_2) instead of holding a copy.
  CLIPTextModelWithProjection: async (dir) => {
    const at = (await readJson(`${dir}/case.json`)).model_folder;
    const folder = typeof at === 'string' ? join(dir, at) : dir;
    return readClipTextFolder(nodeFolderReader(folder), folder);
  },
};

/**
 * Conformance bound per storage type, as a fraction of max|ref|: f16 rounds every weight and
 * activation to 11 significant bits, so it is held to 1e-2 rather than f32's 1e-3.
 */
export const TOLERANCE: Record<'f32' | 'f16', number> = { f32: 1e-3, f16: 1e-2 };

/**
 * Which bound a run in `precision` on this device is held to: f16's where anything is stored in
 * f16 (the weights alone included: 'auto' without shader-f16 rounds them as f16 models do).
 */
export function toleranceOf(rt: Runtime, precision: Precision): 'f32' | 'f16' {
  const p = resolvePrecision(rt.gpu.features, precision);
  return p.dtype === 'f16' || p.weights === 'f16' ? 'f16' : 'f32';
}

/**
 * The bound of a run whose GEMM weights are `weights`: none for q8 / q4 (quantized weights are
 * expected to miss the float bounds: their error is measured and reported, not judged; only NaN/Inf
 * fail), else the precision's.
 */
export function boundOf(rt: Runtime, precision: Precision, weights?: WeightFormat): number {
  return weights === 'q8' || weights === 'q4' ? Infinity : TOLERANCE[toleranceOf(rt, precision)];
}

/**
 * `precision` 'f16' or 'f32', or 'auto': the device's own path (f16 with shader-f16, else f32
 * activations beside f16 weights), one path either way. `weights` (ModelOptions.weights): 'q8' /
 * 'q4' quantize the model's GEMM weights at load, whatever its class (loadModel does so for the
 * denoiser alone), and the run is held to no bound (boundOf). `weightBytes`: the GPU bytes of the
 * model's weights as built.
 */
export async function runModelCase(rt: Runtime, dir: string, precision: Precision = 'f32', weights?: WeightFormat): Promise<Measured & { cls: string; detail?: string; weightBytes: number }> {
  const kase = await readJson(`${dir}/case.json`);
  const cls = String(kase.class);
  const call = String(kase.call);
  const runner = RUNNERS[`${cls}.${call}`];
  if (!runner) throw new Unsupported(`${cls}.${call} is not implemented yet`);
  const io = await readSafetensorsFile(`${dir}/io.safetensors`);
  const folder = await (FOLDERS[cls] ?? loadModelFolder)(dir);
  const inputs: GPUBuffer[] = [];
  const track = (t: Tensor) => (inputs.push(t.buffer), t);
  const caseInputs: CaseInputs = {
    tensor: (key) => track(upload(rt, need(io, key, dir), key)),
    has: (key) => io.has(key),
    timesteps: (B) => {
      // Integer timesteps, or float ones (a fourier UNet2DModel takes sigmas).
      const raw = need(io, 'timestep', dir);
      let ts = raw.dtype.startsWith('F') || raw.dtype === 'BF16' ? Array.from(toFloat32(raw)) : toInt64Numbers(raw);
      if (ts.length === 1 && B > 1) ts = new Array<number>(B).fill(ts[0]!);
      return track({ buffer: rt.upload(new Float32Array(ts), 'timesteps'), shape: [B], label: 'timesteps' });
    },
    classLabels: (model, B) => {
      const cl = io.get('class_labels');
      return cl ? track(model.uploadClassLabels(rt, toFloat32(cl), B)) : undefined;
    },
    ids: (key, num, values) => {
      if (values) return track(uploadIds(rt, values, num, key));
      const t = need(io, key, dir);
      return { ...track(uploadIds(rt, toInt64Numbers(t), num, key)), shape: t.shape };
    },
    values: (key) => toFloat32(need(io, key, dir)),
    intRows: (key) => {
      const t = need(io, key, dir);
      const flat = toInt64Numbers(t);
      const T = t.shape[t.shape.length - 1]!;
      return Array.from({ length: flat.length / T }, (_, b) => flat.slice(b * T, (b + 1) * T));
    },
  };
  const g = new Graph(rt, cls);
  let built: Built | null = null;
  try {
    built = runner(rt, folder, dir, g, caseInputs, { precision, ...(weights ? { weights } : {}) });
    const weightBytes = folder.weights.gpuBytes;
    const outs: Record<string, Tensor> = isTensor(built.out) ? { out: built.out } : built.out;
    g.finalize();
    await rt.compilePending();
    g.submit(cls);
    await rt.assertHealthy();
    const keys = Object.keys(outs);
    const ms: Measured[] = [];
    for (const key of keys) {
      const out = outs[key]!;
      const got = await rt.read(out.buffer, numel(out.shape) * 4);
      const m = measure(got, toFloat32(need(io, key, dir)), boundOf(rt, precision, weights));
      ms.push(keys.length > 1 ? { ...m, note: m.note && `${key}: ${m.note}` } : m);
    }
    // Every output's ratio, where there are several (the worst one is the case's result).
    const detail = keys.length > 1 ? keys.map((k, i) => `${k} ratio ${ms[i]!.ratio.toExponential(2)}`).join(', ') : undefined;
    return { cls, ...(ms.length === 1 ? ms[0]! : worst(ms)), detail, weightBytes };
  } finally {
    g.destroy();
    built?.destroy();
    for (const b of inputs) rt.destroyBuffer(b);
  }
}
