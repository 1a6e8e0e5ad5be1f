import { getGpu } from '../../src/gpu/device.ts';
import { Runtime, type GemmFeed } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import type { DType, Tensor } from '../../src/graph/tensor.ts';
import { castTo, uploadTensor } from '../../src/kernels/cast.ts';

let rt: Promise<Runtime> | null = null;

/**
 * One runtime per test worker, on whatever adapter the machine has (SwiftShader in CI), with
 * shader-f16 enabled where the adapter offers it so the f16 rows can run.
 */
export function runtime(): Promise<Runtime> {
  rt ??= getGpu().then((gpu) => new Runtime(gpu));
  return rt;
}

export function hasF16(rt: Runtime): boolean {
  return rt.gpu.features.has('shader-f16');
}

/** Storage type input() gives tensors; the f16 rows of the op table rerun a case under 'f16'. */
let storage: DType = 'f32';

export async function withStorage<T>(dtype: DType, fn: () => Promise<T>): Promise<T> {
  const prev = storage;
  storage = dtype;
  try {
    return await fn();
  } finally {
    storage = prev;
  }
}

/** The storage type input() gives tensors now. */
export function storageType(): DType {
  return storage;
}

/** The Runtime's kernel choices a test or an op-table row sets for one run. */
export type RuntimeChoices = Partial<Pick<Runtime, 'gemmFeed' | 'gemmAdapt' | 'gemmMath' | 'splitNormStats' | 'fuseGroupNorm' | 'subgroupReduce' | 'attentionKeyGroups' | 'attentionUnrollHead' | 'attentionTileFloats' | 'attentionStageKV' | 'attentionGemmMinHead' | 'attentionGemmMinKeys' | 'winograd' | 'winogradMinWork' | 'planLimits'>>;

/** Runs fn with `choices` set on the runtime, then puts back what was there (cases run one at a time, so the switch is theirs alone). */
export async function withRuntime<T>(rt: Runtime, choices: RuntimeChoices, fn: () => Promise<T>): Promise<T> {
  const r = rt as unknown as Record<string, unknown>;
  const prev = Object.fromEntries(Object.keys(choices).map((k) => [k, r[k]]));
  Object.assign(rt, choices);
  try {
    return await fn();
  } finally {
    Object.assign(rt, prev);
  }
}

/** Runs fn with the GEMM core fed `feed`'s way. */
export function withGemmFeed<T>(rt: Runtime, feed: GemmFeed, fn: () => Promise<T>, adapt = true): Promise<T> {
  return withRuntime(rt, { gemmFeed: feed, gemmAdapt: adapt }, fn);
}

/** An f32 host array uploaded in the current storage type (or `dtype`). */
export function input(rt: Runtime, data: Float32Array | number[], shape: number[], label = 'input', dtype: DType = storage): Tensor {
  const arr = data instanceof Float32Array ? data : new Float32Array(data);
  return uploadTensor(rt, arr, shape, label, dtype);
}

/** Builds a graph with `build`, runs it once and reads back its output. */
export async function runGraph(rt: Runtime, build: (g: Graph) => Tensor): Promise<Float32Array> {
  return (await runGraphWithPlan(rt, 'test', build)).out;
}

/** runGraph, also returning the (destroyed) graph, whose plan stats a test may check. */
export async function runGraphWithPlan(rt: Runtime, label: string, build: (g: Graph) => Tensor): Promise<{ out: Float32Array; g: Graph }> {
  const g = new Graph(rt, label);
  try {
    // An f16 result is widened on the GPU, so what is compared is exactly what was stored.
    const out = castTo(g, 'result-f32', build(g), 'f32');
    g.finalize();
    g.submit(label);
    await rt.assertHealthy();
    const n = out.shape.reduce((a, b) => a * b, 1);
    return { out: await rt.read(out.buffer, n * 4), g };
  } finally {
    g.destroy();
  }
}

/** Deterministic uniform(-1, 1) data (mulberry32), so failures reproduce. */
export function randn(n: number, seed = 1, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}
