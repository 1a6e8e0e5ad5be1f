// `fresco quantize`: a pre-quantized copy of a model folder is smaller, holds the U-Net's GEMM
// weights as the loader's own quantization would make them (so it generates exactly what the
// original does with weights 'q8' / 'q4'), copies everything else byte for byte, and never
// overwrites anything. Also generate's --weights flag.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generate, loadModel, type Model } from '../../src/api.ts';
import { parseGenerateArgs, parseQuantizeArgs, QUANTIZE_USAGE } from '../../src/cli/args.ts';
import { BUILDERS, quantizeFolder, QUANTIZED_FILE, type QuantizeResult } from '../../src/cli/quantize.ts';
import { QUANTIZED_CLASSES } from '../../src/models/precision.ts';
import { SCALE_SUFFIX } from '../../src/io/quant.ts';
import { parseSafetensorsWithMetadata, writeSafetensors, type HostTensor } from '../../src/io/safetensors.ts';
import { ConfigError, UsageError } from '../../src/errors.ts';
import { runFresco } from '../helpers/cli.ts';

const FASHION = 'weights/fashion-ldm';
const SD = 'tests/fixtures/sd-tiny';
const CONTROLNET = 'tests/fixtures/controlnet-tiny';

const tmp = mkdtempSync(join(tmpdir(), 'fresco-quantize-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function tensorsOf(path: string) {
  return parseSafetensorsWithMetadata(new Uint8Array(readFileSync(path)), path);
}

function filesUnder(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(dir, join(rel, e.name)) : [join(rel, e.name)])).sort();
}

const fashionCopies = new Map<string, Promise<{ dir: string; result: QuantizeResult; log: string[] }>>();
function fashionCopy(format: 'q8' | 'q4') {
  let p = fashionCopies.get(format);
  if (!p) {
    const dir = join(tmp, `fashion-${format}`);
    const log: string[] = [];
    p = quantizeFolder(FASHION, dir, format, (l) => log.push(l)).then((result) => ({ dir, result, log }));
    fashionCopies.set(format, p);
  }
  return p;
}

describe('fresco quantize: the files', () => {
  it('writes a smaller copy: GEMM weights as I8 (q8) or packed U8 (q4) with F16 scales, everything else byte for byte', async () => {
    const src = tensorsOf(join(FASHION, 'unet', QUANTIZED_FILE)).tensors;
    const srcBytes = statSync(join(FASHION, 'unet', QUANTIZED_FILE)).size;
    for (const format of ['q8', 'q4'] as const) {
      const { dir, result, log } = await fashionCopy(format);
      expect(filesUnder(dir)).toEqual(filesUnder(FASHION));
      for (const f of filesUnder(FASHION).filter((f) => f !== join('unet', QUANTIZED_FILE))) expect(readFileSync(join(dir, f)).equals(readFileSync(join(FASHION, f))), f).toBe(true);
      const out = tensorsOf(join(dir, 'unet', QUANTIZED_FILE));
      expect(out.metadata).toEqual({ format: 'pt', fresco_quantization: format });
      // A conv, a Linear and an attention projection are quantized; norms, biases and the class embedding table are not.
      for (const key of ['conv_in.weight', 'time_embedding.linear_1.weight', 'down_blocks.1.attentions.0.to_q.weight']) {
        const w = src.get(key)!;
        const q = out.tensors.get(key)!;
        const K = w.shape.slice(1).reduce((a, b) => a * b, 1);
        expect(q.dtype, key).toBe(format === 'q8' ? 'I8' : 'U8');
        expect(q.shape).toEqual(format === 'q8' ? w.shape : [w.shape[0], Math.ceil(K / 32) * 16]);
        expect(out.tensors.get(key + SCALE_SUFFIX)).toMatchObject({ dtype: 'F16', shape: format === 'q8' ? [w.shape[0]] : [w.shape[0], Math.ceil(K / 32)] });
      }
      for (const key of ['conv_norm_out.weight', 'conv_in.bias', 'class_embedding.weight']) {
        expect(out.tensors.get(key)!.dtype, key).toBe('F32');
        expect(Buffer.from(out.tensors.get(key)!.bytes).equals(Buffer.from(src.get(key)!.bytes)), key).toBe(true);
      }
      expect(result.components).toEqual([expect.objectContaining({ dir: 'unet', className: 'UNet2DModel', sourceFiles: [QUANTIZED_FILE], quantized: 113, tensors: src.size })]);
      expect(out.tensors.size).toBe(src.size + 113);
      // f32 in: about a quarter (q8) or an eighth (q4) of the U-Net's bytes, the float rest aside.
      const unetBytes = statSync(join(dir, 'unet', QUANTIZED_FILE)).size;
      expect(unetBytes / srcBytes).toBeLessThan(format === 'q8' ? 0.3 : 0.16);
      expect(result.bytes).toBeLessThan(result.sourceBytes);
      expect(log.at(-1)).toMatch(new RegExp(`^wrote .*fashion-${format}: 29\\.7 MiB -> \\d+\\.\\d MiB`));
      // Every tensor starts aligned to its element size (the widest dtypes come first).
      for (const t of out.tensors.values()) expect(t.bytes.byteOffset % (t.dtype === 'F32' ? 4 : t.dtype === 'F16' ? 2 : 1), t.name).toBe(0);
    }
  });

  it('quantizes a pipeline\'s U-Net and a ControlNet folder, keeping text encoder, VAE and tokenizer as they are', async () => {
    const sd = await quantizeFolder(SD, join(tmp, 'sd-q8'), 'q8');
    expect(sd.components.map((c) => [c.dir, c.className])).toEqual([['unet', 'UNet2DConditionModel']]);
    expect(filesUnder(join(tmp, 'sd-q8'))).toEqual(filesUnder(SD));
    for (const f of filesUnder(SD).filter((f) => !f.startsWith('unet/'))) expect(readFileSync(join(tmp, 'sd-q8', f)).equals(readFileSync(join(SD, f))), f).toBe(true);
    const cn = await quantizeFolder(CONTROLNET, join(tmp, 'cn-q4'), 'q4');
    expect(cn.components).toEqual([expect.objectContaining({ dir: '', className: 'ControlNetModel' })]);
    expect(cn.components[0]!.quantized).toBeGreaterThan(10);
    const q = tensorsOf(join(tmp, 'cn-q4', QUANTIZED_FILE)).tensors;
    expect(q.get('controlnet_down_blocks.0.weight')!.dtype).toBe('U8');
    expect(q.get('controlnet_cond_embedding.conv_in.weight')!.dtype).toBe('U8');
    // A BGR ControlNet reads its conditioning conv_in as floats (its input channels flipped at load): the model says so, and it stays F32.
    const bgr = join(tmp, 'cn-bgr');
    cpSync(CONTROLNET, bgr, { recursive: true });
    const config = JSON.parse(readFileSync(join(bgr, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(bgr, 'config.json'), JSON.stringify({ ...config, controlnet_conditioning_channel_order: 'bgr' }));
    const b = await quantizeFolder(bgr, join(tmp, 'cn-bgr-q4'), 'q4');
    expect(b.components[0]!.quantized).toBe(cn.components[0]!.quantized - 1);
    expect(tensorsOf(join(tmp, 'cn-bgr-q4', QUANTIZED_FILE)).tensors.get('controlnet_cond_embedding.conv_in.weight')!.dtype).toBe('F32');
  });

  it('reads the weights the loader would (shards, the plain file before fp16) and writes one plain file; other weight files are not copied', async () => {
    const src = join(tmp, 'cn-sharded');
    mkdirSync(src);
    cpSync(join(CONTROLNET, 'config.json'), join(src, 'config.json'));
    const whole = tensorsOf(join(CONTROLNET, QUANTIZED_FILE));
    const keys = [...whole.tensors.keys()];
    const shard = (ks: string[]) => writeSafetensors(Object.fromEntries(ks.map((k) => [k, { dtype: whole.tensors.get(k)!.dtype, shape: whole.tensors.get(k)!.shape, data: whole.tensors.get(k)!.bytes }])), whole.metadata);
    const names = ['diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors'];
    const half = Math.floor(keys.length / 2);
    writeFileSync(join(src, names[0]!), shard(keys.slice(half)));
    writeFileSync(join(src, names[1]!), shard(keys.slice(0, half)));
    const weightMap = Object.fromEntries(keys.map((k, i) => [k, names[i < half ? 1 : 0]]));
    writeFileSync(join(src, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    // An fp16 variant and a PyTorch file beside them: the loader reads neither while the index is there.
    writeFileSync(join(src, 'diffusion_pytorch_model.fp16.safetensors'), shard(keys));
    writeFileSync(join(src, 'diffusion_pytorch_model.bin'), 'not read');
    writeFileSync(join(src, 'README.md'), 'a card');
    const log: string[] = [];
    const r = await quantizeFolder(src, join(tmp, 'cn-sharded-q8'), 'q8', (l) => log.push(l));
    expect([...r.components[0]!.sourceFiles].sort()).toEqual(names);
    expect(filesUnder(join(tmp, 'cn-sharded-q8'))).toEqual(['README.md', 'config.json', QUANTIZED_FILE]);
    expect(r.dropped.sort()).toEqual([...names, 'diffusion_pytorch_model.bin', 'diffusion_pytorch_model.fp16.safetensors', 'diffusion_pytorch_model.safetensors.index.json'].sort());
    expect(log.filter((l) => l.startsWith('not copied'))).toHaveLength(3);
    // The same tensors as quantizing the single file.
    const single = await quantizeFolder(CONTROLNET, join(tmp, 'cn-q8'), 'q8');
    expect(single.components[0]!.quantized).toBe(r.components[0]!.quantized);
    const a = tensorsOf(join(tmp, 'cn-sharded-q8', QUANTIZED_FILE)).tensors;
    const b = tensorsOf(join(tmp, 'cn-q8', QUANTIZED_FILE)).tensors;
    const view = (t: HostTensor) => [t.dtype, t.shape, Buffer.from(t.bytes).toString('base64')];
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [k, t] of a) expect(view(t), k).toEqual(view(b.get(k)!));
  });
});

describe('fresco quantize: refusals', () => {
  it('quantizes the model classes whose weights load quantized (QUANTIZED_CLASSES), no more and no fewer', () => {
    expect(new Set(Object.keys(BUILDERS))).toEqual(new Set(QUANTIZED_CLASSES));
  });

  it('never writes into an existing DST (a folder or a file), nor inside SRC, and leaves no temporary folder behind', async () => {
    const dst = join(tmp, 'exists');
    mkdirSync(dst);
    writeFileSync(join(dst, 'mine.txt'), 'precious');
    await expect(quantizeFolder(FASHION, dst, 'q8')).rejects.toThrow(new UsageError(`${dst} already exists; fresco quantize writes a new folder and overwrites nothing (remove it, or choose another name)`));
    const file = join(tmp, 'exists.txt');
    writeFileSync(file, 'precious');
    await expect(quantizeFolder(FASHION, file, 'q8')).rejects.toThrow(/already exists/);
    expect(readFileSync(file, 'utf8')).toBe('precious');
    expect(readdirSync(dst)).toEqual(['mine.txt']);
    await expect(quantizeFolder(FASHION, join(FASHION, 'q8'), 'q8')).rejects.toThrow(/is inside weights\/fashion-ldm/);
    await expect(quantizeFolder(FASHION, join(tmp, 'no', 'such'), 'q8')).rejects.toThrow(/the folder .* does not exist/);
    expect(existsSync(join(FASHION, 'q8'))).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes('partial'))).toEqual([]);
  });

  it('refuses a folder with no U-Net or ControlNet, and an already quantized one, removing its partial output', async () => {
    await expect(quantizeFolder(join(FASHION, 'vae'), join(tmp, 'vae-q8'), 'q8')).rejects.toThrow(/no U-Net or ControlNet to quantize/);
    const { dir } = await fashionCopy('q8');
    await expect(quantizeFolder(dir, join(tmp, 'twice'), 'q4')).rejects.toThrow(ConfigError);
    await expect(quantizeFolder(dir, join(tmp, 'twice'), 'q4')).rejects.toThrow(/already quantized \('.*' is stored q8\); quantize the float original/);
    expect(existsSync(join(tmp, 'twice'))).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes('partial'))).toEqual([]);
  });

  it('parses SRC DST --weights q8|q4, and says what is wrong otherwise', () => {
    expect(parseQuantizeArgs(['a', 'b', '--weights', 'q8'])).toEqual({ src: 'a', dst: 'b', weights: 'q8' });
    expect(parseQuantizeArgs(['--weights=q4', 'a', 'b'])).toEqual({ src: 'a', dst: 'b', weights: 'q4' });
    const bad: [string[], string][] = [
      [['a', 'b', '--weights', 'float'], '--weights must be q8 or q4, got "float"'],
      [['a', 'b', '--weights'], '--weights must be q8 or q4, got null'],
      [['a', 'b'], '--weights q8 or --weights q4 is required'],
      [['a', '--weights', 'q8'], 'fresco quantize needs SRC and DST folders, got "a"'],
      [['a', 'b', 'c', '--weights', 'q8'], 'fresco quantize needs SRC and DST folders, got "a" "b" "c"'],
      [['a', 'b', '--weights', 'q8', '--force'], 'unknown option "--force"'],
    ];
    for (const [argv, msg] of bad) expect(() => parseQuantizeArgs(argv), argv.join(' ')).toThrow(new UsageError(msg));
  });

  it('the command: sizes on stderr, exit 2 with the usage pointer on a bad --weights or an existing DST', () => {
    const dst = join(tmp, 'cli-q4');
    const r = runFresco(['quantize', CONTROLNET, dst, '--weights', 'q4']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^\.: ControlNetModel: quantizing its GEMM weights to q4\n\.: \d+ of \d+ tensors quantized to q4; weights 1\.\d MiB -> 0\.\d MiB \(\d+\.\d%\)\nwrote .*cli-q4: 1\.\d MiB -> 0\.\d MiB/);
    const again = runFresco(['quantize', CONTROLNET, dst, '--weights', 'q4']);
    expect(again.status).toBe(2);
    expect(again.stderr).toBe(`error: ${dst} already exists; fresco quantize writes a new folder and overwrites nothing (remove it, or choose another name)\nrun with --help for the options\n`);
    const bad = runFresco(['quantize', CONTROLNET, join(tmp, 'cli-bad'), '--weights', 'q3']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('error: --weights must be q8 or q4, got "q3"\nrun with --help for the options\n');
    expect(existsSync(join(tmp, 'cli-bad'))).toBe(false);
    const help = runFresco(['quantize', '--help']);
    expect(help.stdout).toBe(QUANTIZE_USAGE + '\n');
  });

  it('generate: a quantized folder draws the PNG the original draws with --weights', async () => {
    const { dir } = await fashionCopy('q4');
    const base = ['generate', '--class', '3', '--steps', '1', '--seed', '2', '--precision', 'f32'];
    const a = runFresco([...base, '--weights', 'q4', '--out', join(tmp, 'flag.png')]);
    expect(a.status, a.stderr).toBe(0);
    const b = runFresco([...base, '--model', dir, '--out', join(tmp, 'folder.png')]);
    expect(b.status, b.stderr).toBe(0);
    expect(readFileSync(join(tmp, 'folder.png')).equals(readFileSync(join(tmp, 'flag.png')))).toBe(true);
    const bad = runFresco(['generate', '--weights', 'q2']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('error: --weights must be q8, q4, float, got "q2"\nrun with --help for the options\n');
  });
});

describe('generate --weights', () => {
  it('parses q8, q4 and float; absent means as the files have them', () => {
    expect(parseGenerateArgs(['--weights', 'q8']).weights).toBe('q8');
    expect(parseGenerateArgs(['--weights=q4']).weights).toBe('q4');
    expect(parseGenerateArgs(['--weights', 'float']).weights).toBe('float');
    expect(parseGenerateArgs([]).weights).toBeUndefined();
    expect(() => parseGenerateArgs(['--weights', 'int8'])).toThrow(new UsageError('--weights must be q8, q4, float, got "int8"'));
  });
});

describe('a quantized folder generates what the original does with the same weights option', () => {
  const models: Model[] = [];
  afterAll(() => models.forEach((m) => m.destroy()));
  const load = async (dir: string, opts: Parameters<typeof loadModel>[1]) => {
    const m = await loadModel(dir, opts);
    models.push(m);
    return m;
  };

  const opts = { class: [1, 7], steps: 2, seed: 11 };
  let float: Promise<Float32Array> | null = null;
  const floatRun = () => (float ??= load(FASHION, { precision: 'f32' }).then((m) => generate(m, opts)).then((r) => r.raw));

  it.each(['q8', 'q4'] as const)('fashion-ldm, %s: bit-identical to the original loaded with that weights option', async (format) => {
    const { dir } = await fashionCopy(format);
    const a = await generate(await load(FASHION, { precision: 'f32', weights: format }), opts);
    const b = await generate(await load(dir, { precision: 'f32' }), opts);
    expect(b.raw.every(Number.isFinite)).toBe(true);
    expect(Array.from(b.raw)).toEqual(Array.from(a.raw));
    // And not what the float weights give: the quantization is there.
    expect(Array.from(b.raw)).not.toEqual(Array.from(await floatRun()));
  });

  it('sd-tiny, q8: bit-identical to the original loaded with weights q8; weights float dequantizes it', async () => {
    const dir = join(tmp, 'sd-q8');
    if (!existsSync(dir)) await quantizeFolder(SD, dir, 'q8');
    const opts = { prompt: 'a red boat', steps: 2, seed: 3, guidance: 5 };
    const a = await generate(await load(SD, { precision: 'f32', weights: 'q8' }), opts);
    const b = await generate(await load(dir, { precision: 'f32' }), opts);
    expect(Array.from(b.raw)).toEqual(Array.from(a.raw));
    const c = await generate(await load(dir, { precision: 'f32', weights: 'float' }), opts);
    expect(c.raw.every(Number.isFinite)).toBe(true);
  });
});
