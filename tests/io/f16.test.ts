import { describe, expect, it } from 'vitest';
import { f16Bits, f16Value, toF16Array } from '../../src/io/f16.ts';

describe('f32 -> f16 rounding', () => {
  it('round-trips every f16 value and rounds every midpoint to even', () => {
    let bad = 0;
    for (let h = 0; h < 0x7c00; h++) {
      const v = f16Value(h);
      if (f16Bits(v) !== h || f16Bits(-v) !== (h | 0x8000)) bad++;
      if (h + 1 < 0x7c00) {
        const next = f16Value(h + 1);
        const mid = (v + next) / 2;
        if (f16Bits(mid) !== (h & 1 ? h + 1 : h)) bad++;
        if (f16Bits(mid + (next - v) / 1024) !== h + 1) bad++;
      }
    }
    expect(bad).toBe(0);
  });
  it('overflows to Infinity past the largest half, keeps NaN, flushes tiny values to signed zero', () => {
    expect(f16Bits(65504)).toBe(0x7bff);
    expect(f16Bits(65519.99)).toBe(0x7bff);
    expect(f16Bits(65520)).toBe(0x7c00);
    expect(f16Bits(-Infinity)).toBe(0xfc00);
    expect(Number.isNaN(f16Value(f16Bits(NaN)))).toBe(true);
    expect(f16Bits(2 ** -25)).toBe(0);
    expect(f16Bits(-(2 ** -25) * 1.5)).toBe(0x8001);
  });
  it('pads to whole words for upload', () => {
    expect(toF16Array([1, 2, 3]).length).toBe(4);
  });
});
