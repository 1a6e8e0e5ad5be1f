// Whole models against the diffusers fixtures (copied from ../shared/fixtures).
import { describe, expect, it } from 'vitest';
import { runModelCase } from '../../src/conformance/model_case.ts';
import { hasF16, runtime } from '../helpers/gpu.ts';

const cases = ['unet2d-classcond', 'unet2d-cond', 'unet2d-ddpm', 'vae-kl-decode', 'vae-kl-encode', 'vq', 'taesd'];

describe('models reproduce diffusers (max|err| <= 1e-3·max|ref|)', () => {
  for (const name of cases) {
    it(name, async () => {
      const rt = await runtime();
      const r = await runModelCase(rt, `tests/fixtures/${name}`);
      console.log(`${name}: max|err| ${r.maxAbsErr.toExponential(2)} max|ref| ${r.maxAbsRef.toExponential(2)} ratio ${r.ratio.toExponential(2)}`);
      expect(r.note).toBeUndefined();
      expect(r.ratio).toBeLessThanOrEqual(1e-3);
      expect(r.pass).toBe(true);
    });
  }
});

// The same models built in f16 (weights and activations stored in half precision, f32 math).
describe('models in f16 reproduce diffusers (max|err| <= 1e-2·max|ref|)', () => {
  for (const name of cases) {
    it(name, async (ctx) => {
      const rt = await runtime();
      if (!hasF16(rt)) {
        console.warn(`skipped f16 ${name}: the adapter (${rt.gpu.adapterName}) has no shader-f16`);
        ctx.skip();
      }
      const r = await runModelCase(rt, `tests/fixtures/${name}`, 'f16');
      console.log(`${name} [f16]: max|err| ${r.maxAbsErr.toExponential(2)} max|ref| ${r.maxAbsRef.toExponential(2)} ratio ${r.ratio.toExponential(2)}`);
      expect(r.note).toBeUndefined();
      expect(r.ratio).toBeLessThanOrEqual(1e-2);
      expect(r.pass).toBe(true);
    });
  }
});
