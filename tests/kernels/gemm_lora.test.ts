// The GEMM core's LORA variant (an unfused LoRA's term in the epilogue) within WebGPU's default
// limits: the device is asked for the adapter's own maxStorageBuffersPerShaderStage
// (src/gpu/device.ts), so a variant over the default 8 would run here and fail on a device that
// keeps the default. The values are checked in the op table (tests/kernels/gemm.cases.ts, 'LoRA' rows).
import { describe, expect, it } from 'vitest';
import { generateWgsl } from '../../src/gpu/runtime.ts';

const DEFAULT_MAX_STORAGE_BUFFERS = 8;

function storageBindings(params: Record<string, boolean | number | undefined>): number {
  return (generateWgsl({ shader: 'gemm', params }).match(/var<storage\b/g) ?? []).length;
}

describe('gemm.wgsl storage bindings', () => {
  it('stay within the default 8 per stage in every variant, the LoRA epilogue included', () => {
    const flags = ['BIAS', 'TEMB', 'RESIDUAL', 'LORA'] as const;
    let most = 0;
    for (const feed of [{ TM: 8, TN4: 2 }, { TM: 4, TN4: 1, TILED: true, BK: 16 }]) {
      for (const kind of [{}, { SPLITK: true }, { REDUCE: true }]) {
        // SPLITK only writes raw sums: the epilogue (LoRA's term too) is the reduce's.
        const epilogues = 'SPLITK' in kind ? [0] : Array.from({ length: 1 << flags.length }, (_, i) => i);
        for (const bits of epilogues) {
          for (const storage of [{}, { F16: true }, { W_PACKED: true }]) {
            const params: Record<string, boolean | number | undefined> = { ...feed, ...kind, ...storage, OUT_COLMAJOR: true };
            flags.forEach((f, j) => (params[f] = !!(bits & (1 << j))));
            const n = storageBindings(params);
            expect(n, JSON.stringify(params)).toBeLessThanOrEqual(DEFAULT_MAX_STORAGE_BUFFERS);
            most = Math.max(most, n);
          }
        }
      }
    }
    // The full epilogue with a LoRA uses all 8: a ninth binding needs another layout.
    expect(most).toBe(DEFAULT_MAX_STORAGE_BUFFERS);
    expect(storageBindings({ TM: 8, TN4: 2, BIAS: true, TEMB: true, RESIDUAL: true, LORA: true })).toBe(8);
    expect(storageBindings({ REDUCE: true, BIAS: true, TEMB: true, RESIDUAL: true, LORA: true })).toBe(7);
  });
});
