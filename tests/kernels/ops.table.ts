// The one table of kernel checks: every op against its CPU reference on many shapes.
import type { OpCase } from './cases.ts';
import { gemmCases } from './gemm.cases.ts';
import { attentionCases } from './attention.cases.ts';
import { groupNormCases } from './group_norm.cases.ts';
import { elementwiseCases } from './elementwise.cases.ts';
import { embeddingCases } from './embedding.cases.ts';
import { rngCases } from './rng.cases.ts';
import { noiseAddCases } from './noise_add.cases.ts';
import { schedulerStepCases } from './scheduler_step.cases.ts';
import { quantizeCases } from './quantize.cases.ts';
import { layerNormCases } from './layer_norm.cases.ts';
import { posteriorSampleCases } from './posterior_sample.cases.ts';
import { f16OnlyCases, f16Rows } from './f16.cases.ts';
import { f16WeightRows } from './f16_weights.cases.ts';
import { f16MathRows } from './f16_math.cases.ts';
import { quantSmallWeightRows, quantWeightRows } from './quant_weights.cases.ts';
import { clipTextCases } from './clip_text.cases.ts';
import { guidanceRescaleCases } from './guidance_rescale.cases.ts';
import { weightLayoutCases } from './weight_layout.cases.ts';
import { treeReduceRows } from './wg_reduce.cases.ts';
import { winogradCases } from './winograd.cases.ts';

const f32Table: OpCase[] = [...gemmCases, ...attentionCases, ...groupNormCases, ...elementwiseCases, ...embeddingCases, ...rngCases, ...noiseAddCases, ...schedulerStepCases, ...quantizeCases, ...layerNormCases, ...posteriorSampleCases, ...clipTextCases, ...guidanceRescaleCases];

// Every kernel with an f16 storage variant again in f16 (skipped where the adapter has no shader-f16),
// every kernel that reads model weights again with f16 weights beside f32 activations, and every
// GEMM again with q8 and q4 weights; the tiled feed's f16 GEMMs again with f16 math; the
// workgroup reductions again without subgroups; a few GEMMs with their weights interleaved for the
// direct feed (weight_layout.cases.ts).
const f16Table = f16Rows(f32Table);
export const opTable: OpCase[] = [...f32Table, ...f16Table, ...f16OnlyCases, ...f16MathRows(f16Table), ...f16WeightRows(f32Table), ...quantWeightRows(f32Table), ...quantSmallWeightRows(), ...treeReduceRows(f32Table), ...weightLayoutCases, ...winogradCases];
