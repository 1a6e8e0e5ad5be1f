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

export const opTable: OpCase[] = [...gemmCases, ...attentionCases, ...groupNormCases, ...elementwiseCases, ...embeddingCases, ...rngCases, ...noiseAddCases, ...schedulerStepCases, ...quantizeCases, ...layerNormCases];
