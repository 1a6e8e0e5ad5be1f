// Exact Philox4x32-10 (integer arithmetic, BigInt for the 64-bit products) and Box-Muller in
// float64, laid out like shaders/rng.wgsl: element i = lane i % 4 of block i / 4, counter
// (block, stream, counter, 0), key (seed low 32 bits, seed high bits).

const M0 = 0xd2511f53n;
const M1 = 0xcd9e8d57n;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

export function philox4x32_10(ctr: readonly number[], key: readonly number[]): [number, number, number, number] {
  let [c0, c1, c2, c3] = ctr.map((v) => v >>> 0) as [number, number, number, number];
  let [k0, k1] = key.map((v) => v >>> 0) as [number, number];
  for (let r = 0; r < 10; r++) {
    const p0 = M0 * BigInt(c0);
    const p1 = M1 * BigInt(c2);
    const hi0 = Number(p0 >> 32n);
    const lo0 = Number(p0 & 0xffffffffn);
    const hi1 = Number(p1 >> 32n);
    const lo1 = Number(p1 & 0xffffffffn);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

export function philoxNormalRef(seed: number, stream: number, counter: number, n: number): Float64Array {
  const key = [Number(BigInt(seed) & 0xffffffffn), Number(BigInt(seed) >> 32n)];
  const out = new Float64Array(n);
  for (let block = 0; block * 4 < n; block++) {
    const w = philox4x32_10([block, stream, counter, 0], key);
    for (let pair = 0; pair < 2; pair++) {
      const u1 = ((w[2 * pair]! >>> 8) + 1) / 2 ** 24;
      const u2 = (w[2 * pair + 1]! >>> 8) / 2 ** 24;
      const radius = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      const lanes = [radius * Math.cos(theta), radius * Math.sin(theta)];
      for (let j = 0; j < 2; j++) {
        const i = block * 4 + pair * 2 + j;
        if (i < n) out[i] = lanes[j]!;
      }
    }
  }
  return out;
}
