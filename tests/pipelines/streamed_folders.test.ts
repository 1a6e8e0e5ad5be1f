// Pipeline folders as the Hub lays them out at scale: a sharded U-Net (…safetensors.index.json),
// fp16 variant files beside full ones, and every check done before a weight byte is streamed.
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, generate } from '../../src/api.ts';
import { nodeFolderReader, type FolderReader } from '../../src/io/model_folder.ts';
import { parseSafetensors, toFloat32, writeSafetensors, type DType } from '../../src/io/safetensors.ts';
import { toF16Array } from '../../src/io/f16.ts';
import { ConfigError, GpuMemoryError, ModelFolderError, PlanLimitError, WeightError } from '../../src/errors.ts';
import { loadSdFrom } from '../../src/pipelines/sd_folder.ts';
import { runtime } from '../helpers/gpu.ts';
import { fakeCaches, fakeServer } from '../helpers/fake_web.ts';

const SRC = 'tests/fixtures/sd-tiny';
const UNET = 'diffusion_pytorch_model.safetensors';
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function copy(): string {
  const dst = mkdtempSync(join(tmpdir(), 'sd-stream-'));
  dirs.push(dst);
  cpSync(SRC, dst, { recursive: true });
  return dst;
}

type Spec = Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }>;

function read(path: string): Spec {
  const out: Spec = {};
  for (const [k, t] of parseSafetensors(new Uint8Array(readFileSync(path)), path)) out[k] = { dtype: t.dtype, shape: t.shape, data: t.bytes };
  return out;
}

/** Splits unet/'s file into `n` shards with diffusers' names and index (variant: the fp16 names). */
function shard(dir: string, n: number, variant = ''): void {
  const spec = read(join(dir, 'unet', UNET));
  rmSync(join(dir, 'unet', UNET));
  const keys = Object.keys(spec);
  const map: Record<string, string> = {};
  const v = variant ? `.${variant}` : '';
  for (let i = 0; i < n; i++) {
    const name = `diffusion_pytorch_model${v}-0000${i + 1}-of-0000${n}.safetensors`;
    const part: Spec = {};
    keys.filter((_, j) => j % n === i).forEach((k) => ((part[k] = spec[k]!), (map[k] = name)));
    writeFileSync(join(dir, 'unet', name), writeSafetensors(part));
  }
  writeFileSync(join(dir, 'unet', `diffusion_pytorch_model.safetensors.index${v}.json`), JSON.stringify({ metadata: { total_size: 0 }, weight_map: map }));
}

/** A FolderReader that logs what is read whole, opened, read by range and streamed. */
function logged(dir: string) {
  const base = nodeFolderReader(dir);
  const log = { read: [] as string[], ranges: [] as string[], streamed: [] as string[], streamedBytes: 0 };
  const reader: FolderReader = {
    where: base.where,
    read: (name) => (log.read.push(name), base.read(name)),
    async open(name) {
      const src = await base.open!(name);
      if (!src) return null;
      return {
        where: src.where,
        size: src.size,
        read: (s, e) => (log.ranges.push(`${name}:${s}-${e}`), src.read(s, e)),
        async *stream(start) {
          log.streamed.push(name);
          for await (const c of src.stream(start)) {
            log.streamedBytes += c.byteLength;
            yield c;
          }
        },
      };
    },
  };
  return { reader, log };
}

const GEN = { prompt: 'a red boat', steps: 2, guidance: 5, seed: 3, scheduler: 'ddim' as const };

describe('streamed pipeline folders', () => {
  it('loads a sharded U-Net (index + 3 shards) to the same image as the single file, streaming each file once', async () => {
    const gpu = (await runtime()).gpu;
    const dir = copy();
    shard(dir, 3);
    const { reader, log } = logged(dir);
    const [a, b] = [await loadModel(SRC, { precision: 'f32', gpu }), await loadModel(reader, { precision: 'f32', gpu })];
    try {
      const weightFiles = log.streamed.filter((n) => n.endsWith('.safetensors'));
      expect(weightFiles.sort()).toEqual([...new Set(weightFiles)].sort());
      expect(weightFiles.filter((n) => n.startsWith('unet/'))).toHaveLength(3);
      expect(log.read).toContain('unet/diffusion_pytorch_model.safetensors.index.json');
      const [ra, rb] = [await generate(a, GEN), await generate(b, GEN)];
      expect(Array.from(rb.raw)).toEqual(Array.from(ra.raw));
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('prefers the variant asked for, and the full files otherwise', async () => {
    const dir = copy();
    // An fp16 sharded variant beside the full file: values rounded to f16, so the runs differ.
    const spec = read(join(dir, 'unet', UNET));
    const half: Spec = {};
    for (const [k, t] of Object.entries(spec)) {
      const v = toFloat32({ name: k, dtype: t.dtype, shape: t.shape, bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
      half[k] = { dtype: 'F16', shape: t.shape, data: toF16Array(v) };
    }
    writeFileSync(join(dir, 'unet', 'full.safetensors'), readFileSync(join(dir, 'unet', UNET)));
    writeFileSync(join(dir, 'unet', UNET), writeSafetensors(half));
    shard(dir, 2, 'fp16');
    writeFileSync(join(dir, 'unet', UNET), readFileSync(join(dir, 'unet', 'full.safetensors')));
    rmSync(join(dir, 'unet', 'full.safetensors'));
    const rt = await runtime();
    const plain = logged(dir);
    const fp16 = logged(dir);
    const a = await loadSdFrom(rt, plain.reader, dir, { precision: 'f32' });
    const b = await loadSdFrom(rt, fp16.reader, dir, { precision: 'f32', variant: 'fp16' });
    try {
      expect(plain.log.streamed.filter((n) => n.startsWith('unet/'))).toEqual([`unet/${UNET}`]);
      expect(fp16.log.streamed.filter((n) => n.startsWith('unet/')).sort()).toEqual(['unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors', 'unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors']);
      // No fp16 file elsewhere: the other components fall back to their full files.
      expect(fp16.log.streamed).toContain('vae/diffusion_pytorch_model.safetensors');
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('names a missing shard and a weight the index places in a shard that lacks it', async () => {
    const gpu = (await runtime()).gpu;
    const dir = copy();
    shard(dir, 2);
    rmSync(join(dir, 'unet', 'diffusion_pytorch_model-00002-of-00002.safetensors'));
    await expect(loadModel(dir, { gpu })).rejects.toThrow(ModelFolderError);
    await expect(loadModel(dir, { gpu })).rejects.toThrow(/diffusion_pytorch_model-00002-of-00002\.safetensors: not found \(diffusion_pytorch_model\.safetensors\.index\.json names it for \d+ weights\)/);
    const dir2 = copy();
    shard(dir2, 2);
    const index = JSON.parse(readFileSync(join(dir2, 'unet', 'diffusion_pytorch_model.safetensors.index.json'), 'utf8'));
    const key = Object.keys(index.weight_map)[0]!;
    index.weight_map[key] = index.weight_map[key].includes('00001') ? 'diffusion_pytorch_model-00002-of-00002.safetensors' : 'diffusion_pytorch_model-00001-of-00002.safetensors';
    writeFileSync(join(dir2, 'unet', 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify(index));
    await expect(loadModel(dir2, { gpu })).rejects.toThrow(new RegExp(`1 weights diffusion_pytorch_model\\.safetensors\\.index\\.json places here are not in it: ${key.replace(/\./g, '\\.')}`));
  });

  it('refuses an unsupported config before opening any weight file', async () => {
    const gpu = (await runtime()).gpu;
    const dir = copy();
    const cfg = JSON.parse(readFileSync(join(dir, 'unet', 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'unet', 'config.json'), JSON.stringify({ ...cfg, addition_embed_type: 'image' }));
    const { reader, log } = logged(dir);
    await expect(loadModel(reader, { gpu })).rejects.toThrow(ConfigError);
    await expect(loadModel(reader, { gpu })).rejects.toThrow(/addition_embed_type/);
    expect(log.ranges).toEqual([]);
    expect(log.streamed).toEqual([]);
    expect(log.read.filter((n) => n.endsWith('.safetensors'))).toEqual([]);
  });

  it('refuses a weight of the wrong shape from the headers alone: no tensor byte is streamed', async () => {
    const gpu = (await runtime()).gpu;
    const dir = copy();
    const vae = read(join(dir, 'vae', UNET));
    const key = Object.keys(vae).find((k) => k.endsWith('conv_in.weight'))!;
    const t = vae[key]!;
    const n = t.shape.reduce((x, y) => x * y, 1);
    vae[key] = { dtype: 'F32', shape: [t.shape[0]!, n / t.shape[0]!], data: t.data };
    writeFileSync(join(dir, 'vae', UNET), writeSafetensors(vae));
    const { reader, log } = logged(dir);
    await expect(loadModel(reader, { gpu })).rejects.toThrow(WeightError);
    expect(log.ranges.some((r) => r.startsWith('unet/'))).toBe(true);
    expect(log.ranges.some((r) => r.startsWith('vae/'))).toBe(true);
    expect(log.streamed).toEqual([]);
    expect(log.streamedBytes).toBe(0);
  });

  it('streams each weight file of the pipeline exactly once on a good load', async () => {
    const gpu = (await runtime()).gpu;
    const { reader, log } = logged(SRC);
    const m = await loadModel(reader, { gpu, precision: 'f32' });
    m.destroy();
    const files = readdirSync(SRC, { recursive: true }).map(String).filter((f) => f.endsWith('.safetensors'));
    expect([...log.streamed].sort()).toEqual(files.sort());
    // Every F32 tensor once on the GPU, each buffer rounded up to 16 bytes (position_ids is not uploaded).
    let bytes = 0;
    let count = 0;
    for (const f of files) for (const t of Object.values(read(join(SRC, f)))) (bytes += t.data.byteLength), count++;
    expect(m.weightBytes).toBeGreaterThan(0.99 * bytes);
    expect(m.weightBytes).toBeLessThanOrEqual(bytes + 16 * count);
  });

  it('refuses weights over maxGpuBytes, or one over the binding limit, before streaming a byte', async () => {
    const rt = await runtime();
    const live = rt.liveBytes;
    const a = logged(SRC);
    await expect(loadSdFrom(rt, a.reader, SRC, { precision: 'f32', maxGpuBytes: 1000 })).rejects.toThrow(GpuMemoryError);
    await expect(loadSdFrom(rt, a.reader, SRC, { precision: 'f32', maxGpuBytes: 1000 })).rejects.toThrow(/the model's weights need \d+ bytes \([\d.]+ MiB\) of GPU memory, over maxGpuBytes 1000 \(0\.0 MiB\); no weight byte was downloaded/);
    expect(a.log.streamed).toEqual([]);
    expect(rt.liveBytes).toBe(live);
    const limits = rt.planLimits;
    rt.planLimits = { ...limits, binding: 4096 };
    try {
      const b = logged(SRC);
      await expect(loadSdFrom(rt, b.reader, SRC, { precision: 'f32' })).rejects.toThrow(PlanLimitError);
      await expect(loadSdFrom(rt, b.reader, SRC, { precision: 'f32' })).rejects.toThrow(/weight '[\w.]+' \[[\d, ]+\] needs \d+ bytes in one binding, over this device's maxStorageBufferBindingSize 4096/);
      expect(b.log.streamed).toEqual([]);
    } finally {
      rt.planLimits = limits;
    }
    expect(rt.liveBytes).toBe(live);
  });
});

/** The folder's files by URL under `base`, with `edit` applied to JSON files (by relative name). */
function served(dir: string, base: string, edit: (name: string, bytes: Uint8Array) => Uint8Array = (_, b) => b): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const f of readdirSync(dir, { recursive: true }).map(String)) {
    const path = join(dir, f);
    try {
      files.set(`${base}${f}`, edit(f, new Uint8Array(readFileSync(path))));
    } catch {
      // a directory
    }
  }
  return files;
}

describe('loadModel over HTTP: what is requested', () => {
  it('takes a Hub repository\'s fp16 files by default, and its full ones when f32 is asked for', async () => {
    const gpu = (await runtime()).gpu;
    const hub = 'http://hub.test/';
    const repo = `${hub}me/sd-tiny/resolve/main/`;
    const files = served(SRC, repo);
    for (const [url, bytes] of [...files]) if (url.endsWith('.safetensors')) files.set(url.replace(/\.safetensors$/, '.fp16.safetensors'), bytes);
    const server = fakeServer(files, { piece: 1 << 16 });
    const streamed = () => server.requests.filter((r) => r.url.endsWith('.safetensors') && r.range && /-$/.test(r.range)).map((r) => r.url.slice(repo.length)).sort();
    const a = await loadModel('hf:me/sd-tiny', { gpu, fetch: server.fetch, hubEndpoint: hub, cache: false, precision: 'f32' });
    a.destroy();
    expect(streamed()).toEqual(['text_encoder/model.safetensors', 'unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors']);
    server.requests.length = 0;
    const b = await loadModel('hf:me/sd-tiny', { gpu, fetch: server.fetch, hubEndpoint: hub, cache: false });
    b.destroy();
    expect(streamed()).toEqual(['text_encoder/model.fp16.safetensors', 'unet/diffusion_pytorch_model.fp16.safetensors', 'vae/diffusion_pytorch_model.fp16.safetensors']);
  });

  const BASE = 'http://models.test/sd-tiny/';
  const weightRequests = (reqs: { url: string; range: string | null }[]) => reqs.filter((r) => r.url.endsWith('.safetensors'));

  it('refuses an unsupported config having requested no weight file at all', async () => {
    const gpu = (await runtime()).gpu;
    const files = served(SRC, BASE, (name, b) => (name === 'unet/config.json' ? new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(b)), addition_embed_type: 'image' })) : b));
    const server = fakeServer(files, { piece: 1 << 16 });
    await expect(loadModel(BASE, { gpu, fetch: server.fetch, cache: false })).rejects.toThrow(/addition_embed_type/);
    expect(server.requests.length).toBeGreaterThan(0);
    expect(weightRequests(server.requests)).toEqual([]);
  });

  it('refuses a misshapen weight having fetched headers only (byte ranges 0-7 and the JSON)', async () => {
    const gpu = (await runtime()).gpu;
    const vae = read(join(SRC, 'vae', UNET));
    const key = Object.keys(vae).find((k) => k.endsWith('conv_in.weight'))!;
    const t = vae[key]!;
    vae[key] = { ...t, shape: [t.shape[0]!, t.data.byteLength / 4 / t.shape[0]!] };
    const files = served(SRC, BASE, (name, b) => (name === `vae/${UNET}` ? writeSafetensors(vae) : b));
    const server = fakeServer(files, { piece: 1 << 16 });
    await expect(loadModel(BASE, { gpu, fetch: server.fetch, cache: false })).rejects.toThrow(WeightError);
    const ranges = weightRequests(server.requests).map((r) => r.range);
    expect(ranges.length).toBeGreaterThan(0);
    // Every weight request is a closed range inside the header: no open-ended stream, no whole GET.
    expect(ranges.every((r) => r !== null && /^bytes=\d+-\d+$/.test(r))).toBe(true);
    for (const r of weightRequests(server.requests)) {
      const bytes = files.get(r.url)!;
      const headerEnd = 8 + Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
      expect(Number(/-(\d+)$/.exec(r.range!)![1])).toBeLessThan(headerEnd);
    }
  });

  it('streams each weight file once into the Cache API, and a second load requests no weight byte', async () => {
    const gpu = (await runtime()).gpu;
    const fake = fakeCaches();
    (globalThis as { caches?: unknown }).caches = fake.caches;
    try {
      const server = fakeServer(served(SRC, BASE), { piece: 1 << 16 });
      const hits: string[] = [];
      const firstHits: string[] = [];
      const a = await loadModel(BASE, { gpu, fetch: server.fetch, precision: 'f32', onCacheHit: (f) => firstHits.push(f) });
      // A file just downloaded is not read again (from the cache) by the same load.
      expect(firstHits).toEqual([]);
      const first = weightRequests(server.requests);
      const files = readdirSync(SRC, { recursive: true }).map(String).filter((f) => f.endsWith('.safetensors'));
      // Per file: the header's two ranges, then one open-ended stream.
      expect(first.filter((r) => r.range !== null && /^bytes=\d+-$/.test(r.range)).map((r) => r.url).sort()).toEqual(files.map((f) => BASE + f).sort());
      // No weight byte is fetched twice: the header's ranges and the stream from the data start.
      const fetched = first.reduce((n, r) => {
        const size = readFileSync(join(SRC, r.url.slice(BASE.length))).byteLength;
        const m = /^bytes=(\d+)-(\d*)$/.exec(r.range ?? '');
        return n + (!m ? size : m[2] ? Number(m[2]) - Number(m[1]) + 1 : size - Number(m[1]));
      }, 0);
      expect(fetched).toBe(files.reduce((n, f) => n + readFileSync(join(SRC, f)).byteLength, 0));
      // Small files are read once per load, though the model's description and its loaders both need the configs.
      const small = server.requests.filter((r) => !r.url.endsWith('.safetensors')).map((r) => r.url);
      expect(small.length).toBeGreaterThan(5);
      expect(small).toEqual([...new Set(small)]);
      server.requests.length = 0;
      const b = await loadModel(BASE, { gpu, fetch: server.fetch, precision: 'f32', onCacheHit: (f) => hits.push(f) });
      expect(weightRequests(server.requests)).toEqual([]);
      expect(hits.filter((f) => f.endsWith('.safetensors')).sort()).toEqual(files.sort());
      const [ra, rb] = [await generate(a, GEN), await generate(b, GEN)];
      expect(Array.from(rb.raw)).toEqual(Array.from(ra.raw));
      a.destroy();
      b.destroy();
    } finally {
      delete (globalThis as { caches?: unknown }).caches;
    }
  });
});
