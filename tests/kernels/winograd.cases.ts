// Winograd F(2x2, 3x3) convs (src/kernels/winograd.ts): every stride-1 3x3 conv case again with its
// weight registered as a model's is, so conv2d() runs the input transform, the 16 GEMMs on the
// GEMM core and the output transform with the epilogue (WINO_OUT in shaders/gemm.wgsl). On both
// feeds; with the weights stored 'n4', in f16 (packed words and array<f16>) and with f16
// activations; the unfused-LoRA rows carry the epilogue's low-rank term through WINO_OUT. A row
// fails if its conv did not transform a weight.
import type { Runtime } from '../../src/gpu/runtime.ts';
import { withGemmFeed } from '../helpers/gpu.ts';
import { runtimeWithoutF16, withGemmLayout, withWeights, withWinogradWeights, type WeightMode } from '../helpers/weights.ts';
import { plainGemmCases, loraConvCasesByName } from './gemm.cases.ts';
import { F32, type OpCase } from './cases.ts';

// In f32 the transforms' roundings (sums of 4 inputs, of 9 weights halved, of the 16 sums) stay
// within the direct conv's tolerance on every row. f16 storage rounds the transformed weights (up
// to 2.25x the weights' own scale) and inputs (sums of 4 values) instead of the plain ones.
const WEIGHTS_F16 = { atol: 2e-3, rtol: 1e-3, why: 'transformed weights rounded to f16 (rel. 2.4e-4 each), activations and arithmetic in f32' };
const F16 = { atol: 1e-2, rtol: 1e-2, why: 'f16 storage: the input and its transform rounded to 11 bits, summed in f32, output rounded once' };

/** The case with its 3x3 weights run as Winograd convs; fails if none was. */
async function winograd(c: OpCase, rt: Runtime, feed: 'direct' | 'tiled', mode: WeightMode = 'activations', layout: 'rows' | 'n4' = 'rows') {
  const { result, transforms } = await withWinogradWeights(rt, () => withGemmFeed(rt, feed, async () => (await withGemmLayout(layout, async () => (await withWeights(mode, () => c.run(rt))).result)).result));
  if (transforms === 0) throw new Error(`${c.op} ${c.name}: no weight was transformed, so the row checks nothing`);
  return result;
}

const stride1k3 = (c: OpCase) => c.op === 'conv2d' && / k3 s1 /.test(c.name);
const plain = [...plainGemmCases.values()].filter(stride1k3);
const lora = [...loraConvCasesByName.values()].filter(stride1k3);

function rows(cases: OpCase[], feed: 'direct' | 'tiled'): OpCase[] {
  return cases.map((c) => ({ ...c, ...F32, name: `${c.name} [winograd, ${feed}]`, run: (rt: Runtime) => winograd(c, rt, feed) }));
}

const CONV = 'conv2d: B2 3->5 7x5 k3 s1 pad 1 +temb +bias +residual';
const UP = 'conv2d: B2 6->5 3x4 k3 s1 pad 1 up to 5x7 +bias +residual';
const pick = (key: string): OpCase => {
  const c = plainGemmCases.get(key);
  if (!c) throw new Error(`no GEMM case '${key}'`);
  return c;
};

export const winogradCases: OpCase[] = [
  ...rows(plain, 'direct'),
  ...rows(plain, 'tiled'),
  ...rows(lora, 'direct'),
  ...rows(lora, 'tiled'),
  ...[CONV, UP].flatMap((k) => [
    { ...pick(k), name: `${pick(k).name} [winograd, direct, n4 weights]`, run: (rt: Runtime) => winograd(pick(k), rt, 'direct', 'activations', 'n4') },
    { ...pick(k), ...WEIGHTS_F16, name: `${pick(k).name} [winograd, direct, n4 f16 weights, packed]`, run: async () => winograd(pick(k), await runtimeWithoutF16(), 'direct', 'f16', 'n4') },
    { ...pick(k), ...WEIGHTS_F16, name: `${pick(k).name} [winograd, direct, f16 weights, shader-f16]`, needsF16: true, run: (rt: Runtime) => winograd(pick(k), rt, 'direct', 'f16') },
    { ...pick(k), ...F16, name: `${pick(k).name} [winograd, tiled, f16]`, dtype: 'f16' as const, run: (rt: Runtime) => winograd(pick(k), rt, 'tiled') },
  ]),
];
