// Textual inversion: a token whose vectors are copies of existing rows must draw exactly what the
// words of those rows draw, which checks the tokenizer's added tokens, the multi-vector expansion
// (tok -> tok tok_1) and the appended table rows together.
import { describe, expect, it } from 'vitest';
import { generate, loadModel } from '../../src/api.ts';
import { readTensor } from '../../src/kernels/cast.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { TokenizerError } from '../../src/errors.ts';
import { runtime } from '../helpers/gpu.ts';

const SD = 'tests/fixtures/sd-tiny';

describe('textual inversion', () => {
  it('a two-vector token made of the rows of "cat" and "toy" draws what "cat toy" draws', async () => {
    const gpu = (await runtime()).gpu;
    const model = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      if (model.loaded.kind !== 'text') throw new Error('text model expected');
      const { tokenizer, textEncoder } = model.loaded.sd;
      const [cat, toy] = [tokenizer.tokenIds('cat'), tokenizer.tokenIds('toy')];
      expect([cat.length, toy.length]).toEqual([1, 1]);
      const table = await readTensor(model.rt, textEncoder.tokenChunks[0]!);
      const d = textEncoder.hiddenSize;
      const rows = new Float32Array(2 * d);
      rows.set(table.subarray(cat[0]! * d, (cat[0]! + 1) * d), 0);
      rows.set(table.subarray(toy[0]! * d, (toy[0]! + 1) * d), d);
      const vocab = textEncoder.vocabSize;
      const file = writeSafetensors({ '<cat-toy>': { dtype: 'F32', shape: [2, d], data: rows } });
      expect(await model.loadTextualInversion(file)).toEqual(['<cat-toy>', '<cat-toy>_1']);
      expect(textEncoder.vocabSize).toBe(vocab + 2);
      expect(tokenizer.tokenIds('a <cat-toy> boat')).toEqual([...tokenizer.tokenIds('a'), vocab, vocab + 1, ...tokenizer.tokenIds('boat')]);
      const opts = { steps: 2, guidance: 5, seed: 9, scheduler: 'ddim' as const, negativePrompt: 'fog' };
      const [a, b, c] = [await generate(model, { ...opts, prompt: 'a <cat-toy> boat' }), await generate(model, { ...opts, prompt: 'a cat toy boat' }), await generate(model, { ...opts, prompt: 'a boat' })];
      expect(Array.from(a.raw)).toEqual(Array.from(b.raw));
      expect(Math.max(...Array.from(a.raw, (v, i) => Math.abs(v - c.raw[i]!)))).toBeGreaterThan(1e-3);
      // The same token again, a width the encoder does not take, and a file of several tensors are refused.
      await expect(model.loadTextualInversion(file)).rejects.toThrow(/token "<cat-toy>" is already in the tokenizer's vocabulary/);
      await expect(model.loadTextualInversion(writeSafetensors({ '<x>': { dtype: 'F32', shape: [d + 1], data: new Float32Array(d + 1) } }))).rejects.toThrow(TokenizerError);
      await expect(model.loadTextualInversion(writeSafetensors({ a: { dtype: 'F32', shape: [d], data: new Float32Array(d) }, b: { dtype: 'F32', shape: [d], data: new Float32Array(d) } }))).rejects.toThrow(/not a textual inversion embedding/);
      // emb_params (A1111) takes its token from the option.
      expect(await model.loadTextualInversion(writeSafetensors({ emb_params: { dtype: 'F32', shape: [1, d], data: rows.subarray(0, d) } }), { token: 'kitty-style' })).toEqual(['kitty-style']);
    } finally {
      model.destroy();
    }
  });
});
