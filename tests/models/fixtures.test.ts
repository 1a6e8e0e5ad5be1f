// Whole models against the diffusers fixtures (copied from ../shared/fixtures).
import { describe, expect, it } from 'vitest';
import { runModelCase } from '../../src/conformance/model_case.ts';
import { runtime } from '../helpers/gpu.ts';

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
