// Quantized GEMM weights on the host (src/io/quant.ts): the layout the GPU buffer and the stored
// files share, the round trip's error bounds, GGML's Q4_0 rule, the scale edge cases (all-zero and
// tiny blocks), the nibble order packForGpu hands the shader, and the stored tensors' shapes.
import { describe, expect, it } from 'vitest';
import { f16Bits, f16Value } from '../../src/io/f16.ts';
import { dequantize, packForGpu, Q4_BLOCK, quantize, quantLayout, storedShapes, type QuantFormat } from '../../src/io/quant.ts';
import { randn } from '../helpers/gpu.ts';

/** Rows of very different magnitudes (so a shared scale would show), uniform(-1, 1) times 10^(r mod 7 - 3). */
function rows(N: number, K: number, seed: number): Float32Array {
  const w = randn(N * K, seed);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w[n * K + k]! *= 10 ** ((n % 7) - 3);
  return w;
}

/** The smallest-magnitude f16 of v's sign whose magnitude is at least |v| (what quant.ts stores as a scale). */
function scaleFor(v: number): number {
  if (v === 0) return 0;
  const h = f16Bits(v);
  return Math.abs(f16Value(h)) < Math.abs(v) ? h + 1 : h;
}

function nibble(data: Uint8Array, i: number): number {
  return (data[i >> 1]! >> ((i & 1) * 4)) & 15;
}

describe('quantLayout', () => {
  it('q8: N·K int8 values padded to a word, then N f16 scales', () => {
    expect(quantLayout('q8', 4, 16)).toEqual({ format: 'q8', N: 4, K: 16, ldw: 16, dataBytes: 64, scaleCount: 4, scaleWord: 16, bytes: 4 * (16 + 2) });
    // 9 value bytes take 3 words; 3 scales take 2 (the last one half used).
    expect(quantLayout('q8', 3, 3)).toEqual({ format: 'q8', N: 3, K: 3, ldw: 3, dataBytes: 9, scaleCount: 3, scaleWord: 3, bytes: 4 * (3 + 2) });
    expect(quantLayout('q8', 1, 1).bytes).toBe(8);
  });

  it('q4: rows padded to whole blocks of 32, two nibbles a byte, one scale per block', () => {
    expect(quantLayout('q4', 4, 64)).toEqual({ format: 'q4', N: 4, K: 64, ldw: 64, dataBytes: 128, scaleCount: 8, scaleWord: 32, bytes: 4 * (32 + 4) });
    // K = 36: each row is two blocks (64 nibbles, 28 of them padding).
    expect(quantLayout('q4', 3, 36)).toEqual({ format: 'q4', N: 3, K: 36, ldw: 64, dataBytes: 96, scaleCount: 6, scaleWord: 24, bytes: 4 * (24 + 3) });
    // K = 27 (a 3×3 conv over 3 channels): one block a row; an odd scale count rounds up to a word.
    expect(quantLayout('q4', 5, 27)).toEqual({ format: 'q4', N: 5, K: 27, ldw: 32, dataBytes: 80, scaleCount: 5, scaleWord: 20, bytes: 4 * (20 + 3) });
    expect(quantLayout('q4', 1, 1)).toEqual({ format: 'q4', N: 1, K: 1, ldw: 32, dataBytes: 16, scaleCount: 1, scaleWord: 4, bytes: 20 });
  });

  it('quantize fills exactly the layout, and refuses values that are not N x K', () => {
    for (const [f, N, K] of [['q8', 3, 5], ['q4', 3, 36], ['q4', 2, 100]] as const) {
      const q = quantize(f, rows(N, K, 7), N, K);
      expect(q.layout).toEqual(quantLayout(f, N, K));
      expect(q.data.byteLength).toBe(q.layout.dataBytes);
      expect(q.scales.length).toBe(q.layout.scaleCount);
      expect(packForGpu(q).byteLength).toBe(q.layout.bytes);
    }
    expect(() => quantize('q8', new Float32Array(10), 3, 4)).toThrow(RangeError);
  });
});

describe('round trip', () => {
  it('q8: every value within half its row scale, the scale max|row|/127 rounded up to an f16, the largest at ±127', () => {
    for (const [N, K] of [[7, 5], [9, 36], [3, 300]] as const) {
      const w = rows(N, K, N * 1000 + K);
      const q = quantize('q8', w, N, K);
      const deq = dequantize(q);
      const v = new Int8Array(q.data.buffer);
      for (let n = 0; n < N; n++) {
        const row = w.subarray(n * K, (n + 1) * K);
        const max = Math.max(...Array.from(row, Math.abs));
        // max/127 rounded up to an f16: no value lies past ±127 steps.
        const s = f16Value(q.scales[n]!);
        expect(s).toBeGreaterThanOrEqual(max / 127);
        expect(f16Value(q.scales[n]! - 1)).toBeLessThan(max / 127);
        let err = 0;
        let qmax = 0;
        for (let k = 0; k < K; k++) {
          err = Math.max(err, Math.abs(row[k]! - deq[n * K + k]!));
          qmax = Math.max(qmax, Math.abs(v[n * K + k]!));
          // What the GPU multiplies with: the stored int8 times the f16 scale, in f32.
          expect(deq[n * K + k]).toBe(Math.fround(v[n * K + k]! * s));
        }
        // s/2 from rounding to the grid, and a relative 2^-24 from the f32 product.
        expect(err, `row ${n}`).toBeLessThanOrEqual((s / 2) * (1 + 2 ** -20));
        // A normal f16 scale is within 2^-10 of max/127, so the largest value is ±127; a subnormal one
        // (the 1e-3 rows) may be a little larger.
        if (s >= 2 ** -14) expect(qmax).toBe(127);
        else expect(qmax).toBeGreaterThanOrEqual(120);
      }
    }
  });

  it('q4: every value within half its block scale unless clamped to +7 (then within one scale); K = 36 and 100 leave partial blocks', () => {
    for (const [N, K] of [[5, 32], [4, 36], [3, 100]] as const) {
      const w = rows(N, K, N * 1000 + K + 1);
      const q = quantize('q4', w, N, K);
      const deq = dequantize(q);
      const { ldw } = q.layout;
      let clamped = 0;
      for (let n = 0; n < N; n++) {
        for (let k0 = 0; k0 < K; k0 += Q4_BLOCK) {
          const b = (n * ldw + k0) / Q4_BLOCK;
          const s = f16Value(q.scales[b]!);
          for (let k = k0; k < Math.min(k0 + Q4_BLOCK, K); k++) {
            const x = w[n * K + k]!;
            const e = Math.abs(x - deq[n * K + k]!);
            const qv = nibble(q.data, n * ldw + k) - 8;
            expect(deq[n * K + k]).toBe(Math.fround(qv * s));
            // Q4_0 has levels -8..7 times s: a value opposite the largest one (x/s in (7.5, 8]) can
            // only reach +7, one whole step away. Everything else rounds to the nearest level.
            if (x / s > 7.5) {
              clamped++;
              expect(qv).toBe(7);
              expect(e).toBeLessThanOrEqual(Math.abs(s) * (1 + 2 ** -20));
            } else {
              expect(e, `(${n}, ${k})`).toBeLessThanOrEqual((Math.abs(s) / 2) * (1 + 2 ** -20));
            }
          }
        }
        // Padding past K (nibbles K..ldw-1 of the row) holds q = 0.
        for (let k = K; k < ldw; k++) expect(nibble(q.data, n * ldw + k)).toBe(8);
      }
      // Uniform values: some block has a value near the opposite extreme.
      if (K >= 100) expect(clamped).toBeGreaterThan(0);
    }
  });

  it("q4 (GGML Q4_0): each block's largest-magnitude value maps to -8, the scale is value / -8 rounded away from zero, and it comes back exactly when f16 holds it", () => {
    const N = 3;
    const K = 70;
    const w = rows(N, K, 99);
    // Largest values f16 holds exactly, of both signs, in the middle of a block, and one in the partial block.
    const planted: [number, number][] = [[0 * K + 5, 2.5], [0 * K + 40, -0.75], [1 * K + 31, -3], [1 * K + 64, 0.375], [2 * K + 69, 1.5]];
    for (const [i, v] of planted) w[i] = v * 10 ** Math.floor(i / K);
    const q = quantize('q4', w, N, K);
    const deq = dequantize(q);
    const { ldw } = q.layout;
    for (let n = 0; n < N; n++) {
      for (let k0 = 0; k0 < K; k0 += Q4_BLOCK) {
        const end = Math.min(k0 + Q4_BLOCK, K);
        let at = k0;
        for (let k = k0; k < end; k++) if (Math.abs(w[n * K + k]!) > Math.abs(w[n * K + at]!)) at = k;
        const big = w[n * K + at]!;
        const b = (n * ldw + k0) / Q4_BLOCK;
        expect(q.scales[b]).toBe(scaleFor(big / -8));
        // The scale has the opposite sign of the largest value.
        expect(Math.sign(f16Value(q.scales[b]!))).toBe(-Math.sign(big));
        expect(nibble(q.data, n * ldw + at)).toBe(0);
        // -8 · scale is big rounded away from zero to an f16 (8 is a power of two): one f16 step at most.
        expect(deq[n * K + at]).toBe(f16Value(scaleFor(big)));
        expect(Math.abs(deq[n * K + at]! - big)).toBeLessThanOrEqual(Math.abs(big) * 2 ** -10);
      }
    }
    for (const [i] of planted) {
      expect(f16Value(f16Bits(w[i]!))).toBe(w[i]);
      expect(deq[i]).toBe(w[i]);
    }
  });

  it('a hand-made q4 block: values on the grid come back exactly, ±7.5 round half up (Math.round), values near +8 clamp to 7', () => {
    // Largest magnitude -8 → scale +1: every integer in -8..7 is a level.
    const w = new Float32Array(32);
    for (let k = 0; k < 16; k++) w[k] = k - 8;
    w[16] = 7.5; // rounds to 8, clamped to 7
    w[17] = -7.5; // Math.round(-7.5) = -7
    w[18] = 0.4;
    w[19] = -0.6;
    w[20] = 8 - 1e-3; // |w| < 8: still below the largest, clamped to 7
    const q = quantize('q4', w, 1, 32);
    expect(q.scales[0]).toBe(0x3c00);
    const d = dequantize(q);
    expect(Array.from(d.subarray(0, 16))).toEqual(Array.from(w.subarray(0, 16)));
    expect(Array.from(d.subarray(16, 22))).toEqual([7, -7, 0, -1, 7, 0]);
  });
});

describe('scale edge cases', () => {
  it('small rows and blocks (subnormal f16 scales) keep every value within half a step: the largest is never clamped', () => {
    // Rounding max/127 to the nearest f16 would give a scale below it for some of these, and clamp
    // the largest value: max|row| 1e-5 lost a quarter of its value, 40 steps of 6e-8.
    for (let e = -8; e <= -2; e += 0.25) {
      const mag = 10 ** e;
      for (const f of ['q8', 'q4'] as QuantFormat[]) {
        const N = 4;
        const K = 64;
        const w = randn(N * K, Math.round(e * 100) + 1000, mag);
        for (let n = 0; n < N; n++) w[n * K + 7 * n] = (n & 1 ? -1 : 1) * mag;
        const q = quantize(f, w, N, K);
        const deq = dequantize(q);
        for (let i = 0; i < N * K; i++) {
          const s = Math.abs(f16Value(q.scales[f === 'q8' ? Math.floor(i / K) : i >> 5]!));
          expect(s, `${f} 1e${e}`).toBeGreaterThan(0);
          const x = w[i]!;
          // q4 keeps Q4_0's one clamp: a value opposite the block's largest (x/scale past 7.5) goes to +7.
          const clamped = f === 'q4' && x / f16Value(q.scales[i >> 5]!) > 7.5;
          expect(Math.abs(x - deq[i]!), `${f} 1e${e} [${i}]`).toBeLessThanOrEqual((clamped ? s : s / 2) * (1 + 2 ** -20));
        }
      }
    }
  });

  it('all-zero rows (q8) and blocks (q4) store zero scales (+0, not -0) and dequantize to +0', () => {
    const N = 3;
    const K = 40;
    const w = rows(N, K, 5);
    w.fill(0, K, 2 * K); // row 1
    w.fill(0, 2 * K, 2 * K + 32); // row 2's first block
    for (const f of ['q8', 'q4'] as QuantFormat[]) {
      const q = quantize(f, w, N, K);
      const deq = dequantize(q);
      if (f === 'q8') {
        expect(q.scales[1]).toBe(0);
        expect(Array.from(new Int8Array(q.data.buffer).subarray(K, 2 * K)).every((v) => v === 0)).toBe(true);
        expect(q.scales[2]).not.toBe(0);
      } else {
        // Row 1: blocks 2 and 3; row 2: block 4 (block 5 holds row 2's last 8 values).
        expect([q.scales[2], q.scales[3], q.scales[4]]).toEqual([0, 0, 0]);
        expect(q.scales[5]).not.toBe(0);
        for (let k = 0; k < 64; k++) expect(nibble(q.data, 64 + k)).toBe(8);
      }
      for (let i = K; i < 2 * K + 32; i++) expect(Object.is(deq[i], 0), `${f} ${i}`).toBe(true);
      // The packed buffer's scales are the same bits.
      const packed = packForGpu(q);
      const s = new Uint16Array(packed.buffer, 4 * q.layout.scaleWord, q.layout.scaleCount);
      expect(Array.from(s)).toEqual(Array.from(q.scales));
    }
  });

  it('tiny values whose scale underflows f16 still get a nonzero scale (the smallest subnormal), with the sign Q4_0 needs', () => {
    // q8: max/127 = 7.9e-9 is below f16's smallest subnormal (6e-8) and would round to 0.
    const q8 = quantize('q8', Float32Array.of(1e-6, -5e-7, 2e-7), 1, 3);
    expect(q8.scales[0]).toBe(1);
    expect(quantize('q8', Float32Array.of(-1e-30), 1, 1).scales[0]).toBe(1);
    const d8 = dequantize(q8);
    const s8 = f16Value(1);
    for (const [i, x] of [1e-6, -5e-7, 2e-7].entries()) expect(Math.abs(d8[i]! - Math.fround(x))).toBeLessThanOrEqual(s8 / 2);
    expect(d8[0]).toBeGreaterThan(0);

    // q4: a positive largest value gives a negative scale: -0's bits with the lowest mantissa bit.
    const pos = new Float32Array(32).fill(1e-8);
    pos[3] = 1e-7;
    const qp = quantize('q4', pos, 1, 32);
    expect(qp.scales[0]).toBe(0x8001);
    expect(dequantize(qp)[3]).toBeCloseTo(2 * f16Value(1), 12);
    const neg = Float32Array.from(pos, (v) => -v);
    const qn = quantize('q4', neg, 1, 32);
    expect(qn.scales[0]).toBe(0x0001);
    expect(dequantize(qn)[3]).toBeCloseTo(-2 * f16Value(1), 12);
    // Far below even that: a nonzero scale, and values that round to 0 rather than to ±inf or NaN.
    const q = quantize('q4', new Float32Array(32).fill(-1e-12), 1, 32);
    expect(q.scales[0]).toBe(0x0001);
    expect(Array.from(dequantize(q)).every((v) => v === 0)).toBe(true);
  });
});

describe('packForGpu', () => {
  it('q4: nibble i in byte i >> 1, low nibble for even i, stored as q + 8; scales after the values at scaleWord', () => {
    // One block, scale +1 (largest magnitude -8): q = w.
    const w = new Float32Array(32);
    w.set([-8, 7, 1, -1, 3, -4]);
    const q = quantize('q4', w, 1, 32);
    const p = packForGpu(q);
    expect(p.byteLength).toBe(20);
    // q+8: 0, 15 | 9, 7 | 11, 4 | then 8, 8 …
    expect(Array.from(p.subarray(0, 4))).toEqual([0xf0, 0x79, 0x4b, 0x88]);
    expect(Array.from(p.subarray(4, 16)).every((b) => b === 0x88)).toBe(true);
    // f16 1.0 = 0x3c00, little-endian; the word's other half is zero.
    expect(Array.from(p.subarray(16, 20))).toEqual([0x00, 0x3c, 0, 0]);
  });

  it('q4 with K = 36: row 1 starts at nibble 64 (byte 32), past row 0 padding; two scales a row', () => {
    const N = 2;
    const K = 36;
    const w = new Float32Array(N * K);
    // Row 0: block 0 scale 1 (a -8), block 1 (k 32..35) scale -0.5 (largest +4): 4 → -8, -3.5 → 7, 1 → -2.
    w[0] = -8;
    w[1] = 5;
    w.set([4, -3.5, 1, 0], 32);
    // Row 1: block 0 holds -2 at k = 0 (scale 0.25) and 0.5 at k = 1; block 1 is zero.
    w[K] = -2;
    w[K + 1] = 0.5;
    const q = quantize('q4', w, N, K);
    const p = packForGpu(q);
    const L = quantLayout('q4', N, K);
    expect(p.byteLength).toBe(L.bytes);
    expect(L.scaleWord).toBe(16);
    expect(p[0]).toBe(0 | (13 << 4)); // -8 + 8, 5 + 8
    expect(p[16]).toBe(0 | (15 << 4)); // nibbles 32, 33: -8 + 8, 7 + 8
    expect(p[17]).toBe(6 | (8 << 4)); // nibbles 34, 35: -2 + 8, 0 + 8
    expect(Array.from(p.subarray(18, 32)).every((b) => b === 0x88)).toBe(true);
    expect(p[32]).toBe(0 | (10 << 4)); // row 1: -2 / 0.25 = -8, 0.5 / 0.25 = 2
    const scales = new Uint16Array(p.buffer, 64, 4);
    expect(Array.from(scales)).toEqual([f16Bits(1), f16Bits(-0.5), f16Bits(0.25), 0]);
    // (+0: a zero value times a negative scale dequantizes to -0.)
    expect(Array.from(dequantize(q), (v) => v + 0)).toEqual(Array.from(w));
  });

  it('q8: int8 values (two’s complement) row by row, padded to a word, then one f16 scale per row', () => {
    // Row 0 max 127 → scale 1; row 1 max 254 → scale 2.
    const w = Float32Array.of(127, -127, 3, -254, 10, 1);
    const q = quantize('q8', w, 2, 3);
    const p = packForGpu(q);
    expect(p.byteLength).toBe(12);
    // 1 / 2 = 0.5 rounds up (Math.round); bytes 6 and 7 pad the values to two words.
    expect(Array.from(p.subarray(0, 8))).toEqual([127, 0x81, 3, 0x81, 5, 1, 0, 0]);
    expect(Array.from(new Uint16Array(p.buffer, 8, 2))).toEqual([f16Bits(1), f16Bits(2)]);
  });
});

describe('storedShapes', () => {
  it('q8 keeps the weight shape with [N] scales; q4 stores [N, ldw / 2] bytes with [N, ldw / 32] scales', () => {
    expect(storedShapes('q8', [8, 16])).toEqual({ values: [8, 16], scales: [8] });
    expect(storedShapes('q8', [4, 3, 3, 3])).toEqual({ values: [4, 3, 3, 3], scales: [4] });
    expect(storedShapes('q4', [8, 64])).toEqual({ values: [8, 32], scales: [8, 2] });
    expect(storedShapes('q4', [8, 36])).toEqual({ values: [8, 32], scales: [8, 2] });
    expect(storedShapes('q4', [4, 3, 3, 3])).toEqual({ values: [4, 16], scales: [4, 1] });
    expect(storedShapes('q4', [320, 320, 1, 1])).toEqual({ values: [320, 160], scales: [320, 10] });
    // They hold exactly the layout's bytes and scales.
    for (const [f, shape] of [['q8', [5, 7]], ['q4', [5, 36]], ['q4', [6, 4, 3, 3]]] as [QuantFormat, number[]][]) {
      const s = storedShapes(f, shape);
      const L = quantLayout(f, shape[0]!, shape.slice(1).reduce((a, b) => a * b, 1));
      expect(s.values.reduce((a, b) => a * b, 1)).toBe(L.dataBytes);
      expect(s.scales.reduce((a, b) => a * b, 1)).toBe(L.scaleCount);
    }
  });
});
