// The page behind bench/ort.ts: one U-Net step of fashion-ldm through ONNX Runtime Web's WebGPU EP
// and through Fresco, in one browser session on one adapter, on the same input. Runs of the two
// alternate so that a noisy host (a CPU adapter shares its cores with everything else) slows both
// alike. Posts its result to window.__result (or the failure to window.__error).
//
// Query: ?batches=1,2&runs=N&warmup=W&profile=0|1&precision=…&weights=…&layout=auto|rows|n4
// Timing excludes the output readback on both sides: ORT writes its output to a GPU buffer
// (preferredOutputLocation 'gpu-buffer') and Fresco leaves it in its graph; each timed run ends
// when the device's queue is idle (onSubmittedWorkDone). ORT's inputs are CPU tensors, so its runs
// include a few-KiB upload that Fresco's (inputs uploaded once) do not.
import type * as OrtModule from 'onnxruntime-web';
import { createGpu } from '../../src/gpu/device.ts';
import { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import { loadModelFrom } from '../../src/io/model_folder.ts';
import { UNet2DModel } from '../../src/models/unet_2d.ts';
import { readUNet2DConfig } from '../../src/models/unet_2d_config.ts';
import { modelLoader } from '../../src/models/model_loader.ts';
import type { Precision, WeightFormat } from '../../src/models/precision.ts';
import { countStep, installHooks, type StepCounts } from './hooks.ts';
import { profileGraph, type KernelTotal } from './profile.ts';
import { urlFolderReader } from '../../src/io/url_reader.ts';
import { publish, type BatchResult } from './page_result.ts';

type Ort = typeof OrtModule;

const q = new URLSearchParams(location.search);
const batches = (q.get('batches') ?? '1,2').split(',').map(Number);
const runs = Number(q.get('runs') ?? 5);
const warmup = Number(q.get('warmup') ?? 2);
const profile = q.get('profile') === '1';
const precision = (q.get('precision') ?? 'f32') as Precision;
const weights = (q.get('weights') ?? undefined) as WeightFormat | undefined;
const layout = (q.get('layout') ?? 'auto') as 'auto' | 'rows' | 'n4';
const TIMESTEP = 500;
const CLASS = 7;
const NULL_CLASS = 10;

const logEl = document.getElementById('log')!;
function log(msg: string): void {
  logEl.textContent += `${msg}\n`;
  console.log(msg);
}

// Deterministic N(0, 1) input, the same array for both engines.
function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function info(device: GPUDevice) {
  const i = device.adapterInfo;
  return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description };
}


async function main() {
  // ORT's own ES module, served as shipped: it loads its wasm from the same folder.
  const ortUrl = '/ort/ort.webgpu.min.mjs';
  const ort = (await import(/* @vite-ignore */ ortUrl)) as Ort;
  ort.env.wasm.wasmPaths = '/ort/';
  // One thread: the wasm side only schedules kernels, and threads would need cross-origin isolation.
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'warning';
  if (profile) installHooks();

  // Fresco's device first: this is the adapter the library asks for in a browser.
  const ctx = await createGpu();
  const rt = new Runtime(ctx);
  const frescoAdapter = info(ctx.device);
  log(`fresco adapter: ${ctx.adapterName}; features: ${[...ctx.features].join(', ')}`);

  const folder = await loadModelFrom(urlFolderReader('/weights/fashion-ldm/unet', { cache: false }), '/weights/fashion-ldm/unet');
  const loader = modelLoader(rt, folder.weights, { precision, weights });
  // layout=rows keeps the GEMM weights row-major where the loader would interleave them for the
  // direct feed (the A/B of that layout).
  if (layout !== 'auto') loader.gemmLayout = layout;
  const unet = new UNet2DModel(loader, readUNet2DConfig(folder.config, '/weights/fashion-ldm/unet'));
  log(`fresco storage: ${unet.precision.description}${weights ? `, ${weights} weights` : ''}; ${[...loader.weights.values()].filter((t) => t.layout === 'n4').length} GEMM weights interleaved (n4)`);

  const modelBytes = new Uint8Array(await (await fetch('/onnx/unet.onnx')).arrayBuffer());
  // ['webgpu'] alone: with a wasm fallback listed, a WebGPU failure would silently time the CPU.
  const session = await ort.InferenceSession.create(modelBytes, {
    executionProviders: ['webgpu'],
    preferredOutputLocation: 'gpu-buffer',
    graphOptimizationLevel: 'all',
  });
  const ortDevice = await ort.env.webgpu.device;
  const ortAdapter = info(ortDevice);
  log(`ort adapter: ${JSON.stringify(ortAdapter)}; ort ${ort.env.versions.web}`);

  const results: BatchResult[] = [];
  const profiles: Record<string, { frescoKernels: KernelTotal[]; frescoCounts: StepCounts; ortCounts: StepCounts }> = {};
  for (const B of batches) {
    const C = unet.inChannels;
    const S = unet.sampleSize;
    const n = B * C * S * S;
    const sample = randn(n, 11 + B);
    // The guidance batch: the class label, then the null class, as the pipeline runs it.
    const labels = Array.from({ length: B }, (_, i) => (B > 1 && i >= B / 2 ? NULL_CLASS : CLASS));

    const feeds = {
      sample: new ort.Tensor('float32', sample, [B, C, S, S]),
      timestep: new ort.Tensor('int64', BigInt64Array.from(labels, () => BigInt(TIMESTEP)), [B]),
      class_labels: new ort.Tensor('int64', BigInt64Array.from(labels, (l) => BigInt(l)), [B]),
    };
    const ortRun = async () => {
      const res = await session.run(feeds);
      await ortDevice.queue.onSubmittedWorkDone();
      return res.out!;
    };

    const input = { buffer: rt.upload(sample, 'unet-in'), shape: [B, C, S, S], label: 'unet-in' };
    const tBuf = rt.upload(new Float32Array([TIMESTEP]), 'timestep');
    const labelT = { buffer: rt.upload(Uint32Array.from(labels), 'class-labels'), shape: [B], label: 'class-labels' };
    const g = new Graph(rt, `unet-b${B}`);
    const out = unet.forward(g, input, { timesteps: tBuf, broadcast: true, classLabels: labelT });
    g.finalize();
    const frescoRun = async () => {
      const enc = rt.device.createCommandEncoder({ label: g.label });
      g.record(enc);
      rt.device.queue.submit([enc.finish()]);
      await rt.device.queue.onSubmittedWorkDone();
    };

    // Same input, same output? Read both once, outside the timed runs.
    const ortOut = await ortRun();
    const ortData = (await ortOut.getData(true)) as Float32Array;
    await frescoRun();
    await rt.assertHealthy();
    const frescoData = await rt.read(out.buffer, n * 4);
    let maxAbsDiff = 0;
    let maxAbsRef = 0;
    for (let i = 0; i < n; i++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ortData[i]! - frescoData[i]!));
      maxAbsRef = Math.max(maxAbsRef, Math.abs(ortData[i]!));
    }
    // Relative to the output's scale: single elements near zero make elementwise ratios meaningless.
    const maxRelDiff = maxAbsDiff / maxAbsRef;
    log(`batch ${B}: max |ORT - Fresco| = ${maxAbsDiff.toExponential(3)} (max |ORT| ${maxAbsRef.toFixed(3)}, relative ${maxRelDiff.toExponential(3)})`);

    for (let r = 0; r < warmup; r++) {
      (await ortRun()).dispose();
      await frescoRun();
    }
    const ortMs: number[] = [];
    const frescoMs: number[] = [];
    for (let r = 0; r < runs; r++) {
      let t = performance.now();
      const o = await ortRun();
      ortMs.push(performance.now() - t);
      o.dispose();
      t = performance.now();
      await frescoRun();
      frescoMs.push(performance.now() - t);
    }
    await rt.assertHealthy();
    const ortUnetStepMs = median(ortMs);
    const frescoUnetStepMs = median(frescoMs);
    const ratio = ortUnetStepMs / frescoUnetStepMs;
    log(`batch ${B}: ORT ${ortUnetStepMs.toFixed(1)} ms, Fresco ${frescoUnetStepMs.toFixed(1)} ms, ORT/Fresco ${ratio.toFixed(2)}`);
    results.push({ batch: B, labels, ortMs, frescoMs, ortUnetStepMs, frescoUnetStepMs, ratio, maxAbsDiff, maxRelDiff, maxAbsRef });

    if (profile) {
      const ortCounts = await countStep(async () => (await ortRun()).dispose());
      const frescoCounts = await countStep(frescoRun);
      const frescoKernels = ctx.features.has('timestamp-query') ? await profileGraph(rt, g) : [];
      profiles[`batch${B}`] = { frescoKernels, frescoCounts, ortCounts };
      log(`batch ${B}: ORT ${ortCounts.dispatches} dispatches in ${ortCounts.passes} passes, ${ortCounts.submits} submits; Fresco ${frescoCounts.dispatches} in ${frescoCounts.passes}, ${frescoCounts.submits}`);
    }
    g.destroy();
    for (const b of [input.buffer, tBuf, labelT.buffer]) rt.destroyBuffer(b);
  }
  await session.release();
  unet.destroy();
  return { adapter: ctx.adapterName, frescoAdapter, ortAdapter, ortVersion: ort.env.versions.web, userAgent: navigator.userAgent, timestampQuery: ctx.features.has('timestamp-query'), runs, warmup, results, profiles };
}

publish(main(), log);
