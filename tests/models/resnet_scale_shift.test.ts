// ResnetBlock2D with time_embedding_norm "scale_shift" (resnet_time_scale_shift in the U-Nets):
// the block alone against a float64 CPU forward written here from diffusers' definition, and a
// tiny UNet2DModel built with it end to end.
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { readSafetensorsFile, type HostTensor } from '../../src/io/safetensors.ts';
import { loadModelFolder } from '../../src/io/model_folder.ts';
import { WeightStore } from '../../src/io/weights.ts';
import { WeightLoader } from '../../src/models/loader.ts';
import { ResnetBlock2D } from '../../src/models/resnet.ts';
import { UNet2DModel } from '../../src/models/unet_2d.ts';
import { readUNet2DConfig } from '../../src/models/unet_2d_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { readUNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';
import { compare } from '../helpers/compare.ts';
import { input, randn, runGraph, runtime } from '../helpers/gpu.ts';
import { ConfigError } from '../../src/errors.ts';

function host(name: string, shape: number[], data: Float32Array): HostTensor {
  return { name, dtype: 'F32', shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

// ---- float64 reference, straight from diffusers.models.resnet.ResnetBlock2D.forward ----
const silu = (v: number) => v / (1 + Math.exp(-v));

function groupNorm64(x: ArrayLike<number>, B: number, C: number, S: number, G: number, eps: number, gamma: ArrayLike<number>, beta: ArrayLike<number>): Float64Array {
  const out = new Float64Array(B * C * S);
  const cpg = C / G;
  for (let b = 0; b < B; b++)
    for (let g = 0; g < G; g++) {
      let sum = 0;
      for (let c = g * cpg; c < (g + 1) * cpg; c++) for (let s = 0; s < S; s++) sum += x[(b * C + c) * S + s]!;
      const mean = sum / (cpg * S);
      let sq = 0;
      for (let c = g * cpg; c < (g + 1) * cpg; c++) for (let s = 0; s < S; s++) sq += (x[(b * C + c) * S + s]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(sq / (cpg * S) + eps);
      for (let c = g * cpg; c < (g + 1) * cpg; c++)
        for (let s = 0; s < S; s++) out[(b * C + c) * S + s] = (x[(b * C + c) * S + s]! - mean) * rstd * gamma[c]! + beta[c]!;
    }
  return out;
}

/** Zero-padded stride-1 conv with a k×k kernel, k odd. */
function conv64(x: ArrayLike<number>, B: number, Cin: number, H: number, W: number, w: ArrayLike<number>, bias: ArrayLike<number>, Cout: number, k: number): Float64Array {
  const out = new Float64Array(B * Cout * H * W);
  const p = (k - 1) / 2;
  for (let b = 0; b < B; b++)
    for (let o = 0; o < Cout; o++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < W; xx++) {
          let acc = bias[o]!;
          for (let c = 0; c < Cin; c++)
            for (let dy = 0; dy < k; dy++)
              for (let dx = 0; dx < k; dx++) {
                const iy = y + dy - p;
                const ix = xx + dx - p;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += x[((b * Cin + c) * H + iy) * W + ix]! * w[((o * Cin + c) * k + dy) * k + dx]!;
              }
          out[((b * Cout + o) * H + y) * W + xx] = acc;
        }
  return out;
}

interface Dims { B: number; Cin: number; Cout: number; H: number; W: number; T: number; groups: number; eps: number; outputScaleFactor: number }

function resnetScaleShiftRef(d: Dims, x: Float32Array, tembAct: Float32Array, w: Map<string, Float32Array>): Float64Array {
  const { B, Cin, Cout, H, W, T, groups, eps } = d;
  const S = H * W;
  const h1 = groupNorm64(x, B, Cin, S, groups, eps, w.get('norm1.weight')!, w.get('norm1.bias')!).map(silu);
  const h2 = conv64(h1, B, Cin, H, W, w.get('conv1.weight')!, w.get('conv1.bias')!, Cout, 3);
  // time_emb_proj(temb)[:, :, None, None], then torch.chunk(temb, 2, dim=1): scale first.
  const pw = w.get('time_emb_proj.weight')!;
  const pb = w.get('time_emb_proj.bias')!;
  const proj = new Float64Array(B * 2 * Cout);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < 2 * Cout; n++) {
      let acc = pb[n]!;
      for (let t = 0; t < T; t++) acc += tembAct[b * T + t]! * pw[n * T + t]!;
      proj[b * 2 * Cout + n] = acc;
    }
  const h3 = groupNorm64(h2, B, Cout, S, groups, eps, w.get('norm2.weight')!, w.get('norm2.bias')!);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < Cout; c++)
      for (let s = 0; s < S; s++) {
        const i = (b * Cout + c) * S + s;
        h3[i] = silu(h3[i]! * (1 + proj[b * 2 * Cout + c]!) + proj[b * 2 * Cout + Cout + c]!);
      }
  const h4 = conv64(h3, B, Cout, H, W, w.get('conv2.weight')!, w.get('conv2.bias')!, Cout, 3);
  const res = Cin === Cout ? Float64Array.from(x) : conv64(x, B, Cin, H, W, w.get('conv_shortcut.weight')!, w.get('conv_shortcut.bias')!, Cout, 1);
  return h4.map((v, i) => (res[i]! + v) / d.outputScaleFactor);
}

async function runBlock(rt: Runtime, d: Dims, seed: number) {
  const shapes: [string, number[]][] = [
    ['norm1.weight', [d.Cin]], ['norm1.bias', [d.Cin]],
    ['conv1.weight', [d.Cout, d.Cin, 3, 3]], ['conv1.bias', [d.Cout]],
    ['time_emb_proj.weight', [2 * d.Cout, d.T]], ['time_emb_proj.bias', [2 * d.Cout]],
    ['norm2.weight', [d.Cout]], ['norm2.bias', [d.Cout]],
    ['conv2.weight', [d.Cout, d.Cout, 3, 3]], ['conv2.bias', [d.Cout]],
  ];
  if (d.Cin !== d.Cout) shapes.push(['conv_shortcut.weight', [d.Cout, d.Cin, 1, 1]], ['conv_shortcut.bias', [d.Cout]]);
  const weights = new Map<string, Float32Array>();
  const tensors = new Map<string, HostTensor>();
  shapes.forEach(([name, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    // Norm gains near 1; the projection large enough that (1 + scale) changes sign somewhere.
    const data = name.endsWith('norm1.weight') || name.endsWith('norm2.weight') ? randn(n, seed + i).map((v) => 1 + 0.5 * v) : randn(n, seed + i, name.startsWith('time_emb_proj') ? 1 : 0.3);
    weights.set(name, data);
    tensors.set(`blk.${name}`, host(`blk.${name}`, shape, data));
  });
  const x = randn(d.B * d.Cin * d.H * d.W, seed + 100, 2);
  const tembAct = randn(d.B * d.T, seed + 101);
  const store = new WeightStore(tensors, 'random');
  const loader = new WeightLoader(rt, store).sub('blk');
  const block = new ResnetBlock2D(loader, { inChannels: d.Cin, outChannels: d.Cout, tembChannels: d.T, groups: d.groups, eps: d.eps, outputScaleFactor: d.outputScaleFactor, timeEmbeddingNorm: 'scale_shift' });
  store.assertAllUsed();
  const got = await runGraph(rt, (g) => block.forward(g, input(rt, x, [d.B, d.Cin, d.H, d.W], 'x'), input(rt, tembAct, [d.B, d.T], 'temb')));
  loader.destroy();
  return { got, ref: resnetScaleShiftRef(d, x, tembAct, weights) };
}

describe('ResnetBlock2D scale_shift', () => {
  const dims: Dims[] = [
    { B: 2, Cin: 8, Cout: 16, H: 5, W: 6, T: 12, groups: 4, eps: 1e-5, outputScaleFactor: 1 },
    { B: 1, Cin: 16, Cout: 16, H: 4, W: 4, T: 8, groups: 8, eps: 1e-6, outputScaleFactor: Math.SQRT2 },
  ];
  for (const d of dims) {
    it(`matches a float64 CPU forward: B ${d.B}, ${d.Cin}→${d.Cout} ch, ${d.H}x${d.W}, groups ${d.groups}, scale factor ${d.outputScaleFactor.toPrecision(3)}`, async () => {
      const rt = await runtime();
      const { got, ref } = await runBlock(rt, d, 40 + d.Cin);
      // Two 3x3 convs over up to 16 channels (K = 144) in f32 after a norm: F32-table tolerance.
      const cmp = compare(got, ref, 1e-4, 1e-4);
      console.log(`resnet scale_shift ${d.Cin}→${d.Cout}: ${cmp.report.split('\n')[0]}`);
      expect(cmp.ok, cmp.report).toBe(true);
    });
  }
});

/** The class-conditional fixture's weights re-shaped for scale_shift: 2C time projections, no mid-attention norm. */
async function scaleShiftUnetStore(): Promise<{ store: WeightStore; config: Record<string, unknown> }> {
  const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
  const raw = await readSafetensorsFile('tests/fixtures/unet2d-classcond/diffusion_pytorch_model.safetensors');
  const tensors = new Map<string, HostTensor>();
  let seed = 900;
  for (const [key, t] of raw) {
    // diffusers' UNetMidBlock2D: attn_groups = None unless resnet_time_scale_shift == "default".
    if (key.startsWith('mid_block.attentions.0.group_norm.')) continue;
    if (key.includes('time_emb_proj.')) {
      const s2 = [2 * t.shape[0]!, ...t.shape.slice(1)];
      tensors.set(key, host(key, s2, randn(s2.reduce((a, b) => a * b, 1), seed++, 0.2)));
    } else {
      tensors.set(key, t);
    }
  }
  return { store: new WeightStore(tensors, 'unet2d-classcond (scale_shift)'), config: { ...folder.config, resnet_time_scale_shift: 'scale_shift' } };
}

describe('UNet2DModel with resnet_time_scale_shift "scale_shift"', () => {
  it('builds from 2C time projections (mid attention without group norm) and runs a finite forward', async () => {
    const rt = await runtime();
    const { store, config } = await scaleShiftUnetStore();
    const unet = buildModel(UNet2DModel, rt, store, readUNet2DConfig(config));
    const B = 2;
    const sample = randn(B * 4 * 8 * 8, 77);
    const out = await runGraph(rt, (g) =>
      unet.forward(g, input(rt, sample, [B, 4, 8, 8], 'sample'), {
        timesteps: input(rt, [10, 500], [B], 't'),
        broadcast: false,
        classLabels: { buffer: rt.upload(new Uint32Array([1, 3]), 'labels'), shape: [B], label: 'labels' },
      }),
    );
    unet.destroy();
    expect(out.length).toBe(B * 4 * 64);
    expect(out.every(Number.isFinite)).toBe(true);
    // The two batch elements have different timesteps, so their scale/shift differ.
    expect(Array.from(out.slice(0, 256)).some((v, i) => v !== out[256 + i])).toBe(true);
  });

  it('the fixture (C-wide time projections) is rejected under scale_shift, naming the key', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
    expect(() => buildModel(UNet2DModel, rt, folder.weights, readUNet2DConfig({ ...folder.config, resnet_time_scale_shift: 'scale_shift', attn_norm_num_groups: 8 }))).toThrow(/time_emb_proj\.weight/);
  });

  for (const value of ['ada_group', 'spatial']) {
    it(`resnet_time_scale_shift = "${value}" stays a ConfigError naming the option`, async () => {
      const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
      expect(() => readUNet2DConfig({ ...folder.config, resnet_time_scale_shift: value })).toThrow(ConfigError);
      expect(() => readUNet2DConfig({ ...folder.config, resnet_time_scale_shift: value })).toThrow(new RegExp(`resnet_time_scale_shift = "${value}"`));
      const cond = await loadModelFolder('tests/fixtures/unet2d-cond');
      expect(() => readUNet2DConditionConfig({ ...cond.config, resnet_time_scale_shift: value })).toThrow(new RegExp(`resnet_time_scale_shift = "${value}"`));
    });
  }
});
