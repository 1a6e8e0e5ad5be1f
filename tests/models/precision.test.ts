import { describe, expect, it } from 'vitest';
import { PrecisionError, resolvePrecision } from '../../src/models/precision.ts';

describe('model precision', () => {
  const withF16 = new Set(['shader-f16']);
  const without = new Set<string>();
  it('auto takes f16 exactly when the device has shader-f16, and says why', () => {
    expect(resolvePrecision(withF16, 'auto')).toEqual({ dtype: 'f16', description: 'f16 (shader-f16)' });
    expect(resolvePrecision(without, 'auto')).toEqual({ dtype: 'f32', description: 'f32 (adapter has no shader-f16)' });
  });
  it('f32 is f32 anywhere, and the default', () => {
    expect(resolvePrecision(withF16, 'f32').dtype).toBe('f32');
    expect(resolvePrecision(withF16).dtype).toBe('f32');
  });
  it('f16 without shader-f16 is an error naming the feature', () => {
    expect(resolvePrecision(withF16, 'f16').dtype).toBe('f16');
    expect(() => resolvePrecision(without, 'f16')).toThrow(PrecisionError);
    expect(() => resolvePrecision(without, 'f16')).toThrow(/shader-f16/);
  });
});
