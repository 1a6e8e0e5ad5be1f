// The WGSL template preprocessor's #unroll (src/gpu/template.ts): straight-line code for CPU adapters.
import { describe, expect, it } from 'vitest';
import { expandTemplate } from '../../src/gpu/template.ts';

const none = (n: string): string => {
  throw new Error(`no include ${n}`);
};
const expand = (src: string, params = {}) => expandTemplate(src, params, none, 't');

describe('template #unroll', () => {
  it('repeats its lines with the index substituted, nested, with a count from a parameter', () => {
    const src = ['#unroll i 2', '#unroll j N', 'c{{i}}_{{j}} += {{X}};', '#endunroll', '#endunroll'].join('\n');
    expect(expand(src, { N: 3, X: 'x' }).split('\n')).toEqual(['c0_0 += x;', 'c0_1 += x;', 'c0_2 += x;', 'c1_0 += x;', 'c1_1 += x;', 'c1_2 += x;']);
  });

  it('takes #if inside its body per copy, and a zero count writes nothing', () => {
    const src = ['a', '#unroll i 2', '#if F', 'f{{i}}', '#else', 'g{{i}}', '#endif', '#endunroll', '#unroll k 0', 'never', '#endunroll', 'b'].join('\n');
    expect(expand(src, { F: true })).toBe('a\nf0\nf1\nb');
    expect(expand(src, { F: false })).toBe('a\ng0\ng1\nb');
  });

  it('is skipped whole inside a dead #if, where its count parameter may be absent', () => {
    const src = ['#if USE', '#unroll i MISSING', 'x{{i}}', '#endunroll', '#endif', 'y'].join('\n');
    expect(expand(src, {})).toBe('y');
  });

  it('refuses a bad count, a missing #endunroll and a stray #endunroll by line', () => {
    expect(() => expand('#unroll i N\nx\n#endunroll', { N: 'two' })).toThrow(/t:1: #unroll count 'N' is not a whole number/);
    expect(() => expand('#unroll i N\nx\n#endunroll', { N: true })).toThrow(/t:1: #unroll count 'N' is not a whole number/);
    expect(() => expand('#unroll i 2\nx')).toThrow(/t:1: #unroll without #endunroll/);
    expect(() => expand('x\n#endunroll')).toThrow(/t:2: #endunroll without #unroll/);
    expect(() => expand('#unroll 2\nx\n#endunroll')).toThrow(/bad #unroll/);
  });
});
