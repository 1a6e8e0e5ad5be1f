// IEEE binary16 on the host: f32 -> f16 bits with round-to-nearest-even (what uploading an f16
// model needs, and what WGSL's f16(x) does on the GPU), and back.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f16 bit pattern nearest to v (ties to even); overflow gives ±Infinity, NaN stays NaN. */
export function f16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  if (exp > 112) {
    // Normal in f16 unless rounding carries it past the largest exponent, which gives Infinity
    // through the same carry.
    const e = exp - 112;
    if (e >= 31) return sign | 0x7c00;
    let h = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
    return sign | Math.min(h, 0x7c00);
  }
  // Subnormal (or zero) in f16: units of 2^-24; f32 subnormals (exp 0) are far below that.
  const shift = 126 - exp;
  if (shift > 24) return sign;
  const full = mant | 0x800000;
  let h = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && h & 1)) h++;
  return sign | h;
}

/** The value of an f16 bit pattern. */
export function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * data as f16 bits, padded to an even count: WebGPU writes whole 4-byte words, and the padding
 * lies past every tensor's last element.
 */
export function toF16Array(data: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(data.length + (data.length & 1));
  for (let i = 0; i < data.length; i++) out[i] = f16Bits(data[i]!);
  return out;
}

/** f16 bits back to f32 values (exact). */
export function fromF16Array(bits: Uint16Array, n = bits.length): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f16Value(bits[i]!);
  return out;
}
