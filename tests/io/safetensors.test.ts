import { describe, expect, it } from 'vitest';
import { parseSafetensors, parseSafetensorsWithMetadata, readSafetensorsFile, toFloat32, toInt64Numbers, writeSafetensors, type HostTensor } from '../../src/io/safetensors.ts';
import { SafetensorsError, type SafetensorsErrorCode } from '../../src/errors.ts';

const SRC = 'bad.safetensors';

/** A file with a hand-written header, so malformed headers can be built. */
function raw(header: unknown, dataBytes = 0, headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function expectError(bytes: Uint8Array, code: SafetensorsErrorCode, ...mentions: string[]): void {
  let err: unknown;
  try {
    parseSafetensors(bytes, SRC);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafetensorsError);
  const e = err as SafetensorsError;
  expect(e.name).toBe('SafetensorsError');
  expect(e.code).toBe(code);
  expect(e.message).toContain(SRC);
  for (const m of mentions) expect(e.message).toContain(m);
}

const f32 = (name: string, shape: number[], begin: number, end: number) => ({ [name]: { dtype: 'F32', shape, data_offsets: [begin, end] } });

describe('safetensors: malformed files', () => {
  it('truncated file (under 8 bytes)', () => expectError(new Uint8Array(5), 'too-small'));

  it('header length beyond the file', () => {
    const b = raw(f32('w', [1], 0, 4), 4);
    expectError(b.subarray(0, 20), 'header-length');
    expectError(raw('{}', 0, 100n), 'header-length');
  });

  it('huge header length', () => expectError(raw('{}', 0, 1n << 63n), 'header-length', 'limit'));

  it('header not JSON', () => expectError(raw('{"w": '), 'header-json'));

  it('header not UTF-8', () => {
    const b = raw('{"xx": 1}');
    b[10] = 0xff;
    expectError(b, 'header-json', 'UTF-8');
  });

  it('JSON array / null header', () => {
    expectError(raw('[1, 2]'), 'header-not-object', 'array');
    expectError(raw('null'), 'header-not-object');
  });

  it('unknown dtype', () => expectError(raw({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, 2), 'unknown-dtype', "'w'", 'F8_E4M3'));

  it('shape × dtype size != byte range', () => expectError(raw(f32('w', [2, 3], 0, 20), 24), 'size-mismatch', "'w'", '[2, 3]', '24'));

  it('range past the end of the data', () => {
    expectError(raw(f32('w', [4], 0, 16), 12), 'out-of-range', "'w'");
    // A real file cut short.
    const good = writeSafetensors({ a: { dtype: 'F32', shape: [3], data: new Float32Array(3) } });
    expectError(good.subarray(0, good.length - 1), 'out-of-range', "'a'");
  });

  it('overlapping ranges', () => {
    const h = { ...f32('a', [2], 0, 8), ...f32('b', [2], 4, 12) };
    expectError(raw(h, 12), 'overlap', "'a'", "'b'");
  });

  it('touching ranges, gaps and empty tensors are fine', () => {
    const h = { ...f32('a', [2], 0, 8), ...f32('b', [2], 8, 16), ...f32('e', [0, 3], 4, 4), ...f32('c', [1], 20, 24) };
    expect([...parseSafetensors(raw(h, 24), SRC).keys()]).toEqual(['a', 'b', 'e', 'c']);
  });

  it('negative or non-integer shape', () => {
    expectError(raw(f32('w', [-1], 0, 0)), 'bad-entry', "'w'");
    expectError(raw(f32('w', [1.5], 0, 6), 6), 'bad-entry', "'w'");
    expectError(raw({ w: { dtype: 'F32', shape: '4', data_offsets: [0, 16] } }, 16), 'bad-entry', "'w'");
  });

  it('bad data_offsets or entry', () => {
    expectError(raw({ w: { dtype: 'F32', shape: [1] } }, 4), 'bad-entry', "'w'");
    expectError(raw({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, 8), 'bad-entry', "'w'");
    expectError(raw({ w: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, 4), 'bad-entry', "'w'");
    expectError(raw({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, 4), 'bad-entry', "'w'");
    expectError(raw({ w: [1, 2] }), 'bad-entry', "'w'");
    expectError(raw({ w: { dtype: 32, shape: [1], data_offsets: [0, 4] } }, 4), 'bad-entry', "'w'");
  });

  it('bad __metadata__', () => {
    expectError(raw({ __metadata__: { format: 1 } }), 'bad-metadata', 'format');
    expectError(raw({ __metadata__: ['pt'] }), 'bad-metadata');
    expectError(raw({ __metadata__: null }), 'bad-metadata');
  });
});

function tensorOf(dtype: HostTensor['dtype'], bytes: Uint8Array, shape = [bytes.length]): HostTensor {
  return { name: 't', dtype, shape, bytes };
}

function roundTrip(t: Record<string, Parameters<typeof writeSafetensors>[0][string]>): Map<string, HostTensor> {
  return parseSafetensors(writeSafetensors(t), 'mem');
}

describe('safetensors: values', () => {
  it('F32 round trip, viewed without a copy when aligned', () => {
    const data = new Float32Array([1.5, -2.25, 3e-38, Infinity, -0]);
    const file = writeSafetensors({ a: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) }, w: { dtype: 'F32', shape: [5], data } });
    const t = parseSafetensors(file, 'mem').get('w')!;
    expect(t.shape).toEqual([5]);
    // 'a' takes 3 bytes, so 'w' starts misaligned: toFloat32 must copy.
    expect(t.bytes.byteOffset % 4).not.toBe(0);
    expect([...toFloat32(t)]).toEqual([...data]);

    const aligned = parseSafetensors(writeSafetensors({ w: { dtype: 'F32', shape: [5], data } }), 'mem').get('w')!;
    const v = toFloat32(aligned);
    expect(v.buffer).toBe(aligned.bytes.buffer);
    expect(Object.is(v[4], -0)).toBe(true);
  });

  it('F16 exact, including subnormals, inf and NaN', () => {
    const bits = [0x3c00, 0xc000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0x3555, 0x7e00];
    const t = roundTrip({ h: { dtype: 'F16', shape: [bits.length], data: new Uint16Array(bits) } }).get('h')!;
    const got = toFloat32(t);
    const want = [1, -2, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 65504, Infinity, -Infinity, -0, 0.333251953125, NaN];
    for (let i = 0; i < want.length; i++) expect(Object.is(got[i], want[i]), `0x${bits[i]!.toString(16)} → ${got[i]}`).toBe(true);
  });

  it('BF16 exact', () => {
    const bits = [0x3f80, 0xc040, 0x4049, 0x7f80, 0xff80, 0x0001, 0x8000];
    const t = roundTrip({ b: { dtype: 'BF16', shape: [7], data: new Uint16Array(bits) } }).get('b')!;
    const got = toFloat32(t);
    const want = [1, -3, 3.140625, Infinity, -Infinity, 2 ** -133, -0];
    for (let i = 0; i < want.length; i++) expect(Object.is(got[i], want[i]), `0x${bits[i]!.toString(16)}`).toBe(true);
  });

  it('F64 rounds to nearest f32', () => {
    const t = roundTrip({ d: { dtype: 'F64', shape: [3], data: new Float64Array([0.1, 1e300, -2.5]) } }).get('d')!;
    expect([...toFloat32(t)]).toEqual([Math.fround(0.1), Infinity, -2.5]);
  });

  it('I64 round trip and safe-integer check', () => {
    const vals = [0n, -1n, 999n, 2n ** 53n - 1n, -(2n ** 53n) + 1n];
    const t = roundTrip({ i: { dtype: 'I64', shape: [5], data: new BigInt64Array(vals) } }).get('i')!;
    expect(toInt64Numbers(t)).toEqual(vals.map(Number));
    expect([...toFloat32(t)]).toEqual(vals.map((v) => Math.fround(Number(v))));
    const big = roundTrip({ i: { dtype: 'I64', shape: [1], data: new BigInt64Array([2n ** 53n]) } }).get('i')!;
    expect(() => toInt64Numbers(big)).toThrow(/safe integer/);
  });

  it('other integer dtypes', () => {
    expect(toInt64Numbers(tensorOf('I32', new Uint8Array(new Int32Array([-7, 8]).buffer), [2]))).toEqual([-7, 8]);
    expect([...toFloat32(tensorOf('I8', new Uint8Array([0xff, 5])))]).toEqual([-1, 5]);
    expect([...toFloat32(tensorOf('I16', new Uint8Array(new Int16Array([-300]).buffer), [1]))]).toEqual([-300]);
    expect([...toFloat32(tensorOf('U8', new Uint8Array([200])))]).toEqual([200]);
    expect([...toFloat32(tensorOf('BOOL', new Uint8Array([0, 1, 2])))]).toEqual([0, 1, 1]);
    expect(() => toInt64Numbers(tensorOf('F32', new Uint8Array(4), [1]))).toThrow(/integer dtype/);
  });

  it('metadata round trip and 8-byte aligned data area', () => {
    const file = writeSafetensors({ w: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } }, { format: 'pt' });
    const headerLen = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(headerLen % 8).toBe(0);
    const { tensors, metadata } = parseSafetensorsWithMetadata(file, 'mem');
    expect(metadata).toEqual({ format: 'pt' });
    expect([...tensors.keys()]).toEqual(['w']);
  });

  it('writer rejects data that does not match the shape', () => {
    expect(() => writeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(SafetensorsError);
  });

  it('reads the reference file written by diffusers', async () => {
    const m = await readSafetensorsFile('tests/fixtures/vae-kl-decode/diffusion_pytorch_model.safetensors');
    const w = m.get('decoder.conv_in.weight')!;
    expect(w.dtype).toBe('F32');
    expect(w.shape).toEqual([64, 4, 3, 3]);
    const v = toFloat32(w);
    expect([v[0], v[1], v[2]]).toEqual([-0.12468072772026062, 0.07231075316667557, 0.1429433375597].map(Math.fround));
    await expect(readSafetensorsFile('tests/fixtures/nope.safetensors')).rejects.toThrow(/not found/);
  });
});
