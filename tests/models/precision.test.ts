import { describe, expect, it } from 'vitest';
import { resolvePrecision } from '../../src/models/precision.ts';
import { PrecisionError } from '../../src/errors.ts';

describe('model precision', () => {
  const withF16 = new Set(['shader-f16']);
  const without = new Set<string>();
  it('auto takes f16 exactly when the device has shader-f16, else f32 activations beside f16 weights, and says why', () => {
    expect(resolvePrecision(withF16, 'auto')).toEqual({ dtype: 'f16', description: 'f16 (shader-f16)' });
    expect(resolvePrecision(without, 'auto')).toEqual({ dtype: 'f32', weights: 'f16', description: 'f32 compute, f16 weights (adapter has no shader-f16)' });
  });
  it("f32 is f32 weights and activations anywhere, and the building blocks' default; 'asked for' only when it was", () => {
    for (const features of [withF16, without]) {
      expect(resolvePrecision(features, 'f32')).toEqual({ dtype: 'f32', description: 'f32 (asked for)' });
      expect(resolvePrecision(features)).toEqual({ dtype: 'f32', description: 'f32 (the default)' });
    }
  });
  it('f16 without shader-f16 is an error naming the feature', () => {
    expect(resolvePrecision(withF16, 'f16').dtype).toBe('f16');
    expect(() => resolvePrecision(without, 'f16')).toThrow(PrecisionError);
    expect(() => resolvePrecision(without, 'f16')).toThrow(/shader-f16/);
    // Library wording (the CLI rephrases it with --precision).
    expect(() => resolvePrecision(without, 'f16')).toThrow("precision 'f16' needs the WebGPU feature shader-f16, which this device does not have (use precision 'auto' or 'f32')");
  });
});
