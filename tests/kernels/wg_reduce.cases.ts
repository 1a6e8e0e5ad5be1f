// The kernels that reduce across a workgroup (group and layer norm statistics, guidance rescale's
// standard deviations, the GEMM attention path's row softmax) again in their workgroup-memory
// form: the rest of the table runs them in the subgroup form wherever the adapter has subgroups
// (Runtime.subgroupReduce, shaders/wg_reduce.wgsl).
import type { Runtime } from '../../src/gpu/runtime.ts';
import { withRuntime } from '../helpers/gpu.ts';
import type { OpCase } from './cases.ts';

export function treeReduceRows(f32Table: OpCase[]): OpCase[] {
  return f32Table
    .filter((c) => (c.op.startsWith('group_norm') && !/ \+\w+/.test(c.name)) || c.op === 'layer_norm' || c.op === 'guidance_rescale' || (c.op === 'attention' && c.name.endsWith('[gemm] [direct]')))
    .map((c) => ({ ...c, name: `${c.name} [workgroup tree]`, run: (rt: Runtime) => withRuntime(rt, { subgroupReduce: false }, () => c.run(rt)) }));
}
