// Template parameters of the kernels that reduce across a workgroup (shaders/wg_reduce.wgsl).
import { canReduceBySubgroup, type Runtime } from '../gpu/runtime.ts';
import { GpuError } from '../errors.ts';

export function reduceParams(rt: Runtime): { SUBGROUPS?: true } {
  if (!rt.subgroupReduce) return {};
  if (!canReduceBySubgroup(rt.gpu)) throw new GpuError(`Runtime.subgroupReduce is set, but this device (${rt.gpu.adapterName}) lacks the 'subgroups' feature or WGSL's subgroup_id builtin`);
  return { SUBGROUPS: true };
}
