// Runs one diffusers model case (config + weights + io.safetensors) and measures the error.
import type { Runtime } from '../gpu/runtime.ts';
import { Graph } from '../graph/graph.ts';
import { numel, type Tensor } from '../graph/tensor.ts';
import { loadModelFolder, readJson } from '../io/model_folder.ts';
import { readSafetensorsFile, toFloat32, toInt64Numbers, type HostTensor } from '../io/safetensors.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { AutoencoderTiny } from '../models/autoencoder_tiny.ts';
import { UNet2DModel } from '../models/unet_2d.ts';
import { UNet2DConditionModel } from '../models/unet_2d_condition.ts';
import { VQModel } from '../models/vq_model.ts';
import { measure, Unsupported, type Measured } from './measure.ts';

function upload(rt: Runtime, t: HostTensor, label: string): Tensor {
  return { buffer: rt.upload(toFloat32(t), label), shape: t.shape, label };
}

function need(io: Map<string, HostTensor>, key: string, dir: string): HostTensor {
  const t = io.get(key);
  if (!t) throw new Error(`${dir}/io.safetensors has no tensor '${key}'`);
  return t;
}

export async function runModelCase(rt: Runtime, dir: string): Promise<Measured & { cls: string }> {
  const kase = await readJson(`${dir}/case.json`);
  const cls = String(kase.class);
  const call = String(kase.call);
  const io = await readSafetensorsFile(`${dir}/io.safetensors`);
  const expected = toFloat32(need(io, 'out', dir));
  const folder = await loadModelFolder(dir);
  const inputs: GPUBuffer[] = [];
  const track = (t: Tensor) => (inputs.push(t.buffer), t);
  const g = new Graph(rt, cls);
  let destroyModel = () => {};
  try {
    let out: Tensor;
    if (cls === 'UNet2DModel' && call === 'forward') {
      const unet = new UNet2DModel(rt, folder.weights, folder.config, dir);
      destroyModel = () => unet.destroy();
      const sample = track(upload(rt, need(io, 'sample', dir), 'sample'));
      const B = sample.shape[0]!;
      let ts = toInt64Numbers(need(io, 'timestep', dir));
      if (ts.length === 1 && B > 1) ts = new Array<number>(B).fill(ts[0]!);
      const timesteps = track({ buffer: rt.upload(new Float32Array(ts), 'timesteps'), shape: [B], label: 'timesteps' });
      const cl = io.get('class_labels');
      const classLabels = cl ? track({ buffer: rt.upload(new Uint32Array(toInt64Numbers(cl)), 'class_labels'), shape: [B], label: 'class_labels' }) : undefined;
      out = unet.forward(g, sample, { timesteps, broadcast: false, classLabels });
    } else if (cls === 'UNet2DConditionModel' && call === 'forward') {
      const unet = new UNet2DConditionModel(rt, folder.weights, folder.config, dir);
      destroyModel = () => unet.destroy();
      const sample = track(upload(rt, need(io, 'sample', dir), 'sample'));
      const B = sample.shape[0]!;
      let ts = toInt64Numbers(need(io, 'timestep', dir));
      if (ts.length === 1 && B > 1) ts = new Array<number>(B).fill(ts[0]!);
      const timesteps = track({ buffer: rt.upload(new Float32Array(ts), 'timesteps'), shape: [B], label: 'timesteps' });
      const context = track(upload(rt, need(io, 'encoder_hidden_states', dir), 'encoder_hidden_states'));
      out = unet.forward(g, sample, { timesteps, broadcast: false }, context);
    } else if (cls === 'AutoencoderKL' && call === 'decode') {
      const vae = new AutoencoderKL(rt, folder.weights, folder.config, dir);
      destroyModel = () => vae.destroy();
      out = vae.decode(g, track(upload(rt, need(io, 'latents', dir), 'latents')));
    } else if (cls === 'AutoencoderKL' && call === 'encode') {
      const vae = new AutoencoderKL(rt, folder.weights, folder.config, dir);
      destroyModel = () => vae.destroy();
      out = vae.encodeMean(g, track(upload(rt, need(io, 'image', dir), 'image')));
    } else if (cls === 'AutoencoderTiny' && call === 'decode') {
      const taesd = new AutoencoderTiny(rt, folder.weights, folder.config, dir);
      destroyModel = () => taesd.destroy();
      out = taesd.decode(g, track(upload(rt, need(io, 'latents', dir), 'latents')));
    } else if (cls === 'VQModel' && call === 'decode') {
      const vq = new VQModel(rt, folder.weights, folder.config, dir);
      destroyModel = () => vq.destroy();
      out = vq.decode(g, track(upload(rt, need(io, 'latents', dir), 'latents')));
    } else {
      throw new Unsupported(`${cls}.${call} is not implemented yet`);
    }
    g.finalize();
    const enc = rt.device.createCommandEncoder();
    g.record(enc);
    rt.watch(cls, () => rt.device.queue.submit([enc.finish()]));
    await rt.assertHealthy();
    const got = await rt.read(out.buffer, numel(out.shape) * 4);
    return { cls, ...measure(got, expected, 1e-3) };
  } finally {
    g.destroy();
    destroyModel();
    for (const b of inputs) rt.destroyBuffer(b);
  }
}
