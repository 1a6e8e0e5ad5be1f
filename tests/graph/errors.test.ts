// GPU-side failures surface as errors that say what failed, never as silent zeros.
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/graph/graph.ts';
import { shaderSources } from '../../src/kernels/shaders.gen.ts';
import { runtime } from '../helpers/gpu.ts';
import { GpuError } from '../../src/errors.ts';

describe('runtime error reporting', () => {
  it('a kernel that fails to compile is reported with its key and the compiler message', async () => {
    const rt = await runtime();
    shaderSources['broken_test'] = `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(1) fn main() { o[0] = undefined_name; }`;
    try {
      const g = new Graph(rt, 'broken');
      const out = g.alloc([1], 'o');
      g.dispatch('broken', { shader: 'broken_test' }, { o: out }, {}, [1]);
      g.finalize();
      await expect(rt.assertHealthy()).rejects.toThrow(/broken_test.*failed to compile[\s\S]*undefined_name/);
      g.destroy();
    } finally {
      delete shaderSources['broken_test'];
    }
  });

  it('missing bindings and uniforms are named at planning time', async () => {
    const rt = await runtime();
    const g = new Graph(rt, 'plan');
    const x = g.alloc([4], 'x');
    const silu = { shader: 'elementwise', params: { ACT_SILU: true } };
    expect(() => g.dispatch('silu', silu, { a: x }, { n: 4 }, [1])).toThrow(/binding 'out' not given/);
    expect(() => g.dispatch('silu', silu, { a: x, out: x }, {}, [1])).toThrow(/uniform 'n' not given/);
    expect(() => g.dispatch('silu', silu, { a: x, out: x }, { n: 4, m: 1 }, [1])).toThrow(GpuError);
    g.destroy();
    await rt.assertHealthy();
  });
});

describe('buffer pool safety', () => {
  it('a released tensor cannot be bound again or released twice', async () => {
    const rt = await runtime();
    const g = new Graph(rt, 'pool');
    const x = g.alloc([4], 'x');
    const silu = { shader: 'elementwise', params: { ACT_SILU: true } };
    const y = g.alloc([4], 'y');
    g.dispatch('silu', silu, { a: x, out: y }, { n: 4 }, [1]);
    g.release(x);
    // The pool hands x's buffer to the next tensor of that size.
    const z = g.alloc([4], 'z');
    expect(z.buffer).toBe(x.buffer);
    expect(() => g.dispatch('silu-again', silu, { a: x, out: y }, { n: 4 }, [1])).toThrow(/uses tensor x after it was released/);
    expect(() => g.release(x)).toThrow(/released twice/);
    g.destroy();
    await rt.assertHealthy();
  });
});
