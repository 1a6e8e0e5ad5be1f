// The three runs every diffusers pipeline trace gets: f32 (<= 1e-3·max|ref|), f16 weights beside
// f32 activations on a device without shader-f16, and f16 where the adapter has shader-f16 (both
// <= 1e-2·max|ref|, the guided eps within its guidance allowance).
import { expect, it } from 'vitest';
import { runPipelineCase } from '../../src/conformance/pipeline_case.ts';
import { hasF16, runtime } from './gpu.ts';
import { runtimeWithoutF16 } from './weights.ts';

/** The three tests of tests/fixtures/<name>, inside the caller's describe; LoRA traces may run their adapters unfused. */
export function traceTests(name: string, loraMode: 'fused' | 'unfused' = 'fused'): void {
  const mode = loraMode === 'unfused' ? ', unfused' : '';
  const tag = loraMode === 'unfused' ? 'unfused, ' : '';
  it(`${name}${mode} in f32 (<= 1e-3·max|ref|)`, async () => {
    const r = await runPipelineCase(await runtime(), `tests/fixtures/${name}`, 'f32', loraMode);
    console.log(`${name}${mode ? ' [unfused]' : ''}: worst ratio ${r.ratio.toExponential(2)} (${r.detail})`);
    expect(r.note).toBeUndefined();
    expect(r.ratio).toBeLessThanOrEqual(1e-3);
    expect(r.pass).toBe(true);
  });
  it(`${name}${mode} with f16 weights beside f32 activations (precision 'auto' without shader-f16; <= 1e-2·max|ref|)`, async () => {
    const r = await runPipelineCase(await runtimeWithoutF16(), `tests/fixtures/${name}`, 'auto', loraMode);
    console.log(`${name} [${tag}f16 weights]: worst ratio ${r.ratio.toExponential(2)} (${r.detail})`);
    expect(r.note).toBeUndefined();
    expect(r.pass).toBe(true);
    expect(r.ratio).toBeLessThanOrEqual(1e-2);
  });
  it(`${name}${mode} in f16 (<= 1e-2·max|ref|; the guided eps within its guidance allowance)`, async (ctx) => {
    const rt = await runtime();
    if (!hasF16(rt)) {
      console.warn(`skipped f16 ${name}: the adapter (${rt.gpu.adapterName}) has no shader-f16`);
      return ctx.skip();
    }
    const r = await runPipelineCase(rt, `tests/fixtures/${name}`, 'f16', loraMode);
    console.log(`${name} [${tag}f16]: worst ratio ${r.ratio.toExponential(2)} (${r.detail})`);
    expect(r.note).toBeUndefined();
    expect(r.pass).toBe(true);
  });
}
