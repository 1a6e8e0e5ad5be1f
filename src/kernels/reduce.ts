// Template parameters of the kernels that reduce across a workgroup (shaders/wg_reduce.wgsl).
import type { Runtime } from '../gpu/runtime.ts';

export function reduceParams(rt: Runtime): { SUBGROUPS?: true } {
  return rt.subgroupReduce ? { SUBGROUPS: true } : {};
}
