// GEMM weights stored 'n4' (Tensor.layout: four output channels interleaved per k), as
// WeightLoader.gemmWeight stores them for the direct feed. A layout changes where each weight is
// read from, not which products are summed in which order, so every row must equal its case on
// row-major weights bit for bit, on the same device and storage, as well as the reference. One row
// per kernel variant the layout adds: the direct feed with f32, packed f16 (W_PACKED) and
// array<f16> weights (W_F16, and with f16 activations), and the tiled feed's staging; N not a
// multiple of 4 (a part group) in each. The LoRA merge into such weights and their channel slices
// are checked on whole models (tests/models/lora.test.ts loads them this way on a CPU adapter) and
// in tests/models/channel_split.test.ts.
import type { Runtime } from '../../src/gpu/runtime.ts';
import { withGemmFeed } from '../helpers/gpu.ts';
import { runtimeWithoutF16, withGemmLayout, withWeights, type WeightMode } from '../helpers/weights.ts';
import { plainGemmCases } from './gemm.cases.ts';
import type { OpCase } from './cases.ts';

const WEIGHTS_F16 = { atol: 2e-3, rtol: 1e-3, why: 'weights rounded to f16 (rel. 2.4e-4 each), activations and arithmetic in f32' };
const F16 = { atol: 1e-2, rtol: 1e-2, why: 'f16 storage: every input rounded to 11 bits, summed in f32, output rounded once' };

function pick(key: string): OpCase {
  const c = plainGemmCases.get(key);
  if (!c) throw new Error(`no GEMM case '${key}'`);
  return c;
}

/** The case with 'n4' weights, checked bit for bit against the same run on row-major weights. */
async function interleaved(c: OpCase, rt: Runtime, feed: 'direct' | 'tiled', mode: WeightMode) {
  const run = (layout: 'rows' | 'n4') => withGemmFeed(rt, feed, () => withGemmLayout(layout, async () => (await withWeights(mode, () => c.run(rt))).result));
  const rows = (await run('rows')).result;
  const { result: n4, n4: interleavedWeights } = await run('n4');
  if (interleavedWeights === 0) throw new Error(`${c.op} ${c.name}: no weight was stored 'n4', so the row checks nothing`);
  for (let i = 0; i < rows.got.length; i++) {
    if (!Object.is(rows.got[i], n4.got[i])) throw new Error(`${c.op} ${c.name}: output ${i} is ${n4.got[i]} with interleaved weights, ${rows.got[i]} with row-major ones (must be bit for bit equal)`);
  }
  return n4;
}

// conv: N = 5 (one whole group and a part one), implicit im2col, time embedding; linear: N = 70 (a
// thread's second group past N) over 67 rows; tiled: K = 300 in slices, N = 50.
const CONV = 'conv2d: B2 3->5 7x5 k3 s1 pad 1 +temb +bias +residual';
const LINEAR = 'linear: B3 M67 K33 N70 +bias +residual';
const TILED = 'linear: B2 M37 K300 N50 +bias +residual';

export const weightLayoutCases: OpCase[] = [
  { ...pick(CONV), name: `${pick(CONV).name} [direct, n4 weights]`, run: (rt: Runtime) => interleaved(pick(CONV), rt, 'direct', 'activations') },
  { ...pick(LINEAR), name: `${pick(LINEAR).name} [direct, n4 weights]`, run: (rt: Runtime) => interleaved(pick(LINEAR), rt, 'direct', 'activations') },
  { ...pick(TILED), name: `${pick(TILED).name} [tiled, n4 weights]`, run: (rt: Runtime) => interleaved(pick(TILED), rt, 'tiled', 'activations') },
  { ...pick(CONV), ...WEIGHTS_F16, name: `${pick(CONV).name} [direct, n4 f16 weights, packed]`, run: async () => interleaved(pick(CONV), await runtimeWithoutF16(), 'direct', 'f16') },
  { ...pick(CONV), ...WEIGHTS_F16, name: `${pick(CONV).name} [direct, n4 f16 weights, shader-f16]`, needsF16: true, run: (rt: Runtime) => interleaved(pick(CONV), rt, 'direct', 'f16') },
  { ...pick(CONV), ...F16, name: `${pick(CONV).name} [direct, n4 weights, f16]`, dtype: 'f16', run: (rt: Runtime) => interleaved(pick(CONV), rt, 'direct', 'activations') },
];
