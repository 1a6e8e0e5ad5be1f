// A pipeline folder that ships only `*.fp16.safetensors` weights (as many Hub repos' fp16 variants
// do) loads, keeps its F16 values as F16 on the GPU, and gives exactly the f16 run of the same
// weights stored in f32 (f32 → f16 at upload rounds to the same values the F16 file holds).
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toF16Array } from '../../src/io/f16.ts';
import { parseSafetensors, toFloat32, writeSafetensors, type DType } from '../../src/io/safetensors.ts';
import { loadSdFolder } from '../../src/pipelines/sd_folder.ts';
import { generateFromText } from '../../src/pipelines/text_to_image.ts';
import { hasF16, runtime } from '../helpers/gpu.ts';

const SRC = 'tests/fixtures/sd-tiny';

/** Copies the folder with every weight file rewritten as F16 under its `.fp16.safetensors` name. */
function fp16Copy(): string {
  const dst = mkdtempSync(join(tmpdir(), 'sd-fp16-'));
  cpSync(SRC, dst, { recursive: true });
  for (const sub of ['unet', 'vae', 'text_encoder']) {
    for (const f of readdirSync(join(dst, sub)).filter((n) => n.endsWith('.safetensors'))) {
      const tensors = parseSafetensors(new Uint8Array(readFileSync(join(dst, sub, f))), f);
      const out: Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }> = {};
      for (const [k, t] of tensors) out[k] = t.dtype === 'F32' ? { dtype: 'F16', shape: t.shape, data: toF16Array(toFloat32(t)).subarray(0, toFloat32(t).length) } : { dtype: t.dtype, shape: t.shape, data: t.bytes };
      rmSync(join(dst, sub, f));
      writeFileSync(join(dst, sub, f.replace('.safetensors', '.fp16.safetensors')), writeSafetensors(out));
    }
  }
  return dst;
}

describe('fp16 weight files', () => {
  it('a folder of *.fp16.safetensors runs in f16 and equals the f16 run of the f32 files', async () => {
    const rt = await runtime();
    if (!hasF16(rt)) {
      console.log('skipped: this adapter has no shader-f16');
      return;
    }
    const dir = fp16Copy();
    const opts = { prompt: 'a red boat', negativePrompt: 'fog', steps: 3, guidanceScale: 6, seed: 4, scheduler: 'ddim' as const };
    const a = await loadSdFolder(rt, SRC, { precision: 'f16' });
    const b = await loadSdFolder(rt, dir, { precision: 'f16' });
    try {
      expect(b.unet.precision.dtype).toBe('f16');
      const ra = await generateFromText(rt, a, opts);
      const rb = await generateFromText(rt, b, opts);
      expect(rb.image.every(Number.isFinite)).toBe(true);
      expect(Array.from(rb.image)).toEqual(Array.from(ra.image));
    } finally {
      a.destroy();
      b.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
