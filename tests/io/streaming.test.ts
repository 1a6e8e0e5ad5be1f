// The streamed load path without a GPU: a header read alone by range, tensors handed over as
// their last byte passes whatever the chunking, and a WeightStore over several files filled once.
import { describe, expect, it } from 'vitest';
import { memorySource, type ByteSource } from '../../src/io/byte_source.ts';
import { readSafetensorsHeader, streamTensors, writeSafetensors, type DType, type HostTensor } from '../../src/io/safetensors.ts';
import { WeightStore } from '../../src/io/weights.ts';
import { SafetensorsError, WeightError } from '../../src/errors.ts';

type Spec = Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }>;

const f16 = (n: number, seed: number) => Uint16Array.from({ length: n }, (_, i) => (seed * 131 + i * 7) & 0x3bff);
const f32 = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => seed + i / 8);

// Odd f16 counts (a tensor ending mid-word), an empty tensor, and tensors never asked for.
const SPEC: Spec = {
  'a.weight': { dtype: 'F32', shape: [3, 5], data: f32(15, 1) },
  'b.bias': { dtype: 'F16', shape: [7], data: f16(7, 2) },
  'skip.me': { dtype: 'F32', shape: [11], data: f32(11, 3) },
  empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  'c.weight': { dtype: 'F16', shape: [2, 3, 3], data: f16(18, 4) },
  'd.tail': { dtype: 'F32', shape: [1], data: f32(1, 5) },
};
const FILE = writeSafetensors(SPEC, { format: 'pt' });

/** A source whose stream yields the given chunk boundaries (absolute offsets) and counts reads. */
function splitSource(bytes: Uint8Array, cuts: number[], log: string[] = []): ByteSource {
  return {
    where: 'split.safetensors',
    size: async () => bytes.byteLength,
    read: async (s, e) => (log.push(`read ${s}-${e}`), bytes.subarray(s, Math.min(e, bytes.byteLength))),
    async *stream(start = 0) {
      log.push(`stream ${start}`);
      const points = [start, ...cuts.filter((c) => c > start && c < bytes.byteLength), bytes.byteLength];
      for (let i = 1; i < points.length; i++) yield bytes.subarray(points[i - 1], points[i]);
    },
  };
}

function bytesOf(v: ArrayBufferView): number[] {
  return Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

async function collect(src: ByteSource, wanted: string[]): Promise<Map<string, HostTensor>> {
  const header = await readSafetensorsHeader(src);
  const got = new Map<string, HostTensor>();
  await streamTensors(src, header, new Set(wanted), (t) => void got.set(t.name, { ...t, bytes: t.bytes.slice() }));
  return got;
}

describe('streamed safetensors', () => {
  it('reads the header with two small reads and no stream', async () => {
    const log: string[] = [];
    const header = await readSafetensorsHeader(splitSource(FILE, [], log));
    expect(log).toEqual(['read 0-8', `read 8-${header.dataStart}`]);
    expect([...header.entries.keys()].sort()).toEqual(Object.keys(SPEC).sort());
    expect(header.entries.get('b.bias')).toMatchObject({ dtype: 'F16', shape: [7] });
    expect(header.dataEnd).toBe(FILE.byteLength);
    expect(header.metadata).toEqual({ format: 'pt' });
  });

  it('hands over every wanted tensor exactly, split into two chunks at every byte of the file', async () => {
    const wanted = ['a.weight', 'b.bias', 'empty', 'c.weight', 'd.tail'];
    for (let cut = 1; cut < FILE.byteLength; cut++) {
      const got = await collect(splitSource(FILE, [cut]), wanted);
      expect([...got.keys()].sort(), `cut ${cut}`).toEqual([...wanted].sort());
      for (const k of wanted) expect(Array.from(got.get(k)!.bytes), `${k} cut at ${cut}`).toEqual(bytesOf(SPEC[k]!.data));
    }
  });

  it('does the same with one-byte and three-byte chunks, and in file order', async () => {
    for (const size of [1, 3, 16]) {
      const order: string[] = [];
      const src = memorySource(FILE, 'm', size);
      const header = await readSafetensorsHeader(src);
      await streamTensors(src, header, new Set(['d.tail', 'a.weight', 'c.weight']), (t) => void order.push(t.name));
      expect(order).toEqual(['a.weight', 'c.weight', 'd.tail']);
    }
  });

  it('names the tensor a truncated file ends inside, and the header length a short file cannot hold', async () => {
    const header = await readSafetensorsHeader(memorySource(FILE, 'whole'));
    const cut = header.entries.get('c.weight')!.begin + 5;
    const short = { ...memorySource(FILE.subarray(0, cut), 'short.safetensors'), size: async () => null };
    await expect(streamTensors(short, header, new Set(['c.weight']), () => undefined)).rejects.toThrow(/short\.safetensors: the file ends at byte \d+, inside tensor 'c\.weight'/);
    await expect(readSafetensorsHeader(memorySource(FILE.subarray(0, 20), 'tiny.safetensors'))).rejects.toThrow(SafetensorsError);
    await expect(readSafetensorsHeader(memorySource(FILE.subarray(0, 20), 'tiny.safetensors'))).rejects.toThrow(/tiny\.safetensors: header length \d+ runs past the end of the file/);
  });
});

describe('WeightStore.streamed', () => {
  const specA: Spec = { 'x.weight': { dtype: 'F32', shape: [2, 2], data: f32(4, 1) }, 'x.bias': { dtype: 'F32', shape: [2], data: f32(2, 2) } };
  const specB: Spec = { 'y.weight': { dtype: 'F16', shape: [3], data: f16(3, 3) } };

  async function shards(b: Spec = specB) {
    const files = [];
    for (const [name, spec] of [['s1.safetensors', specA], ['s2.safetensors', b]] as const) {
      const log: string[] = [];
      const src = { ...splitSource(writeSafetensors(spec), [9, 40], log), where: `m/${name}` };
      files.push({ name, source: src, header: await readSafetensorsHeader(src), log });
    }
    return files;
  }

  it('checks keys and shapes at claim time, streams only files with claims, once, and serves every claim', async () => {
    const files = await shards();
    const store = WeightStore.streamed(files, 'model');
    expect(store.isStreamed).toBe(true);
    const got: Record<string, number[]> = {};
    const sink = (t: HostTensor) => void (got[t.name] = Array.from(t.bytes));
    store.claim('x.weight', [2, 2], sink);
    store.claim('x.weight', [2, 2], (t) => void (got['again'] = Array.from(t.bytes)));
    expect(() => store.claim('y.weight', [4], sink)).toThrow(/weight 'y\.weight' has shape \[3\], expected \[4\]/);
    expect(() => store.claim('z', [1], sink)).toThrow(WeightError);
    expect(() => store.take('x.bias', [2])).toThrow(/streamed and has no bytes yet/);
    expect(store.claimedBytes).toBe(16);
    const progress: [number, number, string][] = [];
    await store.fill((l, t, f) => progress.push([l, t, f]));
    expect(got['x.weight']).toEqual(bytesOf(specA['x.weight']!.data));
    expect(got['again']).toEqual(got['x.weight']);
    expect(progress).toEqual([[0, 16, 's1.safetensors'], [16, 16, 's1.safetensors']]);
    // s2 held no claimed tensor: never streamed.
    expect(files[1]!.log.filter((l) => l.startsWith('stream'))).toEqual([]);
    expect(files[0]!.log.filter((l) => l.startsWith('stream'))).toHaveLength(1);
    await store.fill();
    expect(files[0]!.log.filter((l) => l.startsWith('stream'))).toHaveLength(1);
    expect(store.unused().sort()).toEqual(['x.bias', 'y.weight']);
  });

  it('refuses a key that two shards both hold', async () => {
    const files = await shards({ ...specB, 'x.bias': specA['x.bias']! });
    expect(() => WeightStore.streamed(files, 'model')).toThrow(/model: weight 'x\.bias' is in both m\/s1\.safetensors and m\/s2\.safetensors/);
  });
});
