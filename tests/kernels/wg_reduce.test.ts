// Which form of the workgroup reductions the runtime picks (shaders/wg_reduce.wgsl): the op table
// checks both forms' results, this that the rows meant for the subgroup form get it.
import { describe, expect, it } from 'vitest';
import { canReduceBySubgroup, isCpuAdapter } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import { attention } from '../../src/kernels/attention.ts';
import { groupNorm } from '../../src/kernels/group_norm.ts';
import { guidanceRescale } from '../../src/kernels/guidance_rescale.ts';
import { layerNorm } from '../../src/kernels/layer_norm.ts';
import { reduceParams } from '../../src/kernels/reduce.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { input, randn, runtime, withRuntime } from '../helpers/gpu.ts';

describe('workgroup reductions', () => {
  it('use subgroups by default on CPU adapters that have them, and the tree when told not to', async () => {
    const rt = await runtime();
    expect(rt.subgroupReduce).toBe(isCpuAdapter(rt.gpu.adapterName) && canReduceBySubgroup(rt.gpu));
    // Both CPU adapters CI runs on offer subgroups and WGSL's subgroup_id.
    if (/llvmpipe|swiftshader/i.test(rt.gpu.adapterName)) expect(rt.subgroupReduce).toBe(true);
    for (const sub of canReduceBySubgroup(rt.gpu) ? [true, false] : [false]) {
      // A d128 head through the GEMM path, whose row softmax reduces.
      await withRuntime(rt, { subgroupReduce: sub, attentionGemmMinHead: 1 }, async () => {
        const g = new Graph(rt, 'reduce-form');
        const p = input(rt, randn(64), [64]);
        groupNorm(g, 'gn', input(rt, randn(2 * 64 * 16), [2, 64, 4, 4]), p, p, { groups: 32, eps: 1e-5 });
        layerNorm(g, 'ln', input(rt, randn(3 * 64), [3, 64]), p, p, 1e-5);
        guidanceRescale(g, 'rescale', input(rt, randn(2 * 16), [2, 4, 2, 2], 'eps', 'f32'), 3, 0.7);
        const q = input(rt, randn(2 * 4 * 128), [2, 4, 128]);
        attention(g, 'attn', q, q, q, 1);
        g.finalize();
        const reducing = g.ops.filter((o) => /subgroupAdd|wg_part/.test(o.kernel.code)).map((o) => o.label);
        // The group norm's statistics: its own dispatch, or the whole norm's (Runtime.fuseGroupNorm).
        expect(reducing).toEqual([rt.fuseGroupNorm ? 'gn' : 'gn/stats', 'ln', 'rescale', 'attn/softmax']);
        for (const o of g.ops.filter((o) => reducing.includes(o.label))) expect(o.kernel.code.includes('subgroupAdd(')).toBe(sub);
        g.destroy();
      });
    }
  });

  it('refuse the subgroup form, naming what is missing, on a device without subgroups', () => {
    const rt = { subgroupReduce: true, gpu: { adapterName: 'test device', features: new Set(['subgroups']), wgslFeatures: new Set<string>() } } as unknown as Runtime;
    expect(() => reduceParams(rt)).toThrow(/test device\) lacks the 'subgroups' feature or WGSL's subgroup_id/);
    expect(reduceParams({ ...rt, subgroupReduce: false } as Runtime)).toEqual({});
  });
});
