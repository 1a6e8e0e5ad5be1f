// The one table of kernel checks: every op against its CPU reference on many shapes.
import type { OpCase } from './cases.ts';
import { gemmCases } from './gemm.cases.ts';

export const opTable: OpCase[] = [...gemmCases];
