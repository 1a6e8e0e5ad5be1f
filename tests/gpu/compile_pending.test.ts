// Pipelines are made at first use, or all at once by Runtime.compilePending() (what the library's
// runs await between planning and recording, so a browser compiles them in parallel).
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/graph/graph.ts';
import { shaderSources } from '../../src/kernels/shaders.gen.ts';
import { runtime } from '../helpers/gpu.ts';
import { GpuError } from '../../src/errors.ts';

const scaled = `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) { o[id.x] = f32(id.x) * {{MUL}}.0; }`;

describe('Runtime.compilePending', () => {
  it('makes every pipeline asked for at once, and the recording uses those', async () => {
    const rt = await runtime();
    await rt.compilePending();
    shaderSources['pending_test'] = scaled;
    const g = new Graph(rt, 'pending');
    try {
      const outs = [2, 3, 5].map((mul) => {
        const o = g.alloc([64], `o${mul}`);
        g.dispatch(`scale ${mul}`, { shader: 'pending_test', params: { MUL: mul } }, { o }, {}, [1]);
        return { mul, o };
      });
      g.finalize();
      expect(rt.pipelinesPending).toBe(3);
      await rt.compilePending();
      expect(rt.pipelinesPending).toBe(0);
      const k = rt.kernel({ shader: 'pending_test', params: { MUL: 3 } });
      expect(k.pipeline).toBe(k.pipeline);
      g.submit();
      await rt.assertHealthy();
      for (const { mul, o } of outs) {
        const got = await rt.read(o.buffer, 64 * 4);
        expect(Array.from(got)).toEqual(Array.from({ length: 64 }, (_, i) => i * mul));
      }
    } finally {
      g.destroy();
      delete shaderSources['pending_test'];
    }
  });

  it('a pipeline that fails to be made is named once, leaves later runs alone, and recording it reports it again', async () => {
    const rt = await runtime();
    await rt.compilePending();
    // Valid WGSL, but its workgroup memory is past every adapter's maxComputeWorkgroupStorageSize:
    // only making the pipeline finds that.
    shaderSources['pending_too_big'] = `var<workgroup> big: array<vec4<f32>, 16384>;
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(local_invocation_index) i: u32) { big[i] = vec4<f32>(1.0); workgroupBarrier(); o[i] = big[63u - i].x; }`;
    shaderSources['pending_fine'] = scaled;
    const bad = new Graph(rt, 'too big');
    const good = new Graph(rt, 'fine');
    try {
      const o = bad.alloc([64], 'o');
      bad.dispatch('too big', { shader: 'pending_too_big' }, { o }, {}, [1]);
      bad.finalize();
      await rt.assertHealthy();
      const err = await rt.compilePending().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(GpuError);
      expect((err as Error).message).toMatch(/pending_too_big.*failed to compile[\s\S]*(workgroup|storage)/i);
      // A later run's kernels are made; the failed one is not tried (nor reported) again.
      const o2 = good.alloc([64], 'o2');
      good.dispatch('fine', { shader: 'pending_fine', params: { MUL: 7 } }, { o: o2 }, {}, [1]);
      good.finalize();
      expect(rt.pipelinesPending).toBe(2);
      await rt.compilePending();
      expect(rt.pipelinesPending).toBe(1);
      good.submit();
      await rt.assertHealthy();
      expect(Array.from(await rt.read(o2.buffer, 64 * 4))).toEqual(Array.from({ length: 64 }, (_, i) => i * 7));
      // Recording the failed one makes it synchronously: the error comes back from the next check.
      bad.submit();
      await expect(rt.assertHealthy()).rejects.toThrow(/pending_too_big/);
      expect(rt.pipelinesPending).toBe(0);
    } finally {
      bad.destroy();
      good.destroy();
      delete shaderSources['pending_too_big'];
      delete shaderSources['pending_fine'];
    }
  });

  it('reports a shader that does not compile before making anything, so no stale error is left queued', async () => {
    const rt = await runtime();
    await rt.compilePending();
    shaderSources['pending_broken'] = `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(1) fn main() { o[0] = not_defined; }`;
    const g = new Graph(rt, 'broken');
    try {
      const o = g.alloc([1], 'o');
      g.dispatch('broken', { shader: 'pending_broken' }, { o }, {}, [1]);
      g.finalize();
      await expect(rt.compilePending()).rejects.toThrow(/pending_broken.*failed to compile[\s\S]*not_defined/);
      await rt.assertHealthy();
    } finally {
      g.destroy();
      delete shaderSources['pending_broken'];
    }
  });
});
