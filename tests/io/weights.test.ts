import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelFolder, readJson } from '../../src/io/model_folder.ts';
import { parseSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { WeightStore } from '../../src/io/weights.ts';
import { ModelFolderError, WeightError } from '../../src/errors.ts';

function store(): WeightStore {
  const z = (n: number) => new Float32Array(n);
  const file = writeSafetensors({
    'up.resnets.0.conv1.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    'up.resnets.0.conv1.bias': { dtype: 'F32', shape: [2], data: z(2) },
    'up.resnets.0.conv2.weight': { dtype: 'F32', shape: [2, 3], data: z(6) },
    'up.resnets.0.norm1.weight': { dtype: 'F32', shape: [2], data: z(2) },
    'conv_out.weight': { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
  });
  return new WeightStore(parseSafetensors(file, 'mem'), 'models/tiny');
}

function caught(fn: () => unknown): WeightError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightError);
    return e as WeightError;
  }
  throw new Error('expected a WeightError');
}

describe('WeightStore', () => {
  it('takes weights as f32 and tracks use', () => {
    const s = store();
    expect([...s.take('up.resnets.0.conv1.weight', [2, 3])]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...s.take('conv_out.weight', [1])]).toEqual([1]);
    expect(s.has('conv_out.weight')).toBe(true);
    expect(s.has('nope')).toBe(false);
    expect(s.keys()).toHaveLength(5);
    expect(s.optional('up.resnets.0.conv_shortcut.weight', [2, 2])).toBeNull();
    expect(s.optional('up.resnets.0.conv1.bias', [2])).toHaveLength(2);
    expect(s.unused()).toEqual(['up.resnets.0.conv2.weight', 'up.resnets.0.norm1.weight']);
  });

  it('missing key names the key, the folder and the nearest keys', () => {
    const e = caught(() => store().take('up.resnets.1.conv1.weight', [2, 3]));
    expect(e.code).toBe('missing');
    expect(e.message).toContain("'up.resnets.1.conv1.weight'");
    expect(e.message).toContain('models/tiny');
    // Longest shared prefix is 'up.resnets.'; the shared suffix ranks conv1.weight first.
    expect(e.message).toContain("nearest keys: 'up.resnets.0.conv1.weight', ");
    expect(e.message.match(/'up\.resnets\.0\./g)).toHaveLength(3);
  });

  it('shape mismatch names both shapes', () => {
    const e = caught(() => store().take('up.resnets.0.conv1.weight', [3, 2]));
    expect(e.code).toBe('shape');
    expect(e.message).toContain("'up.resnets.0.conv1.weight'");
    expect(e.message).toContain('[2, 3]');
    expect(e.message).toContain('[3, 2]');
  });

  it('assertAllUsed lists the unused keys', () => {
    const s = store();
    s.take('up.resnets.0.conv1.weight', [2, 3]);
    const e = caught(() => s.assertAllUsed());
    expect(e.code).toBe('unused');
    expect(e.message).toContain('4 weights');
    expect(e.message).toContain('up.resnets.0.norm1.weight');
    s.take('up.resnets.0.conv1.bias', [2]);
    s.take('up.resnets.0.conv2.weight', [2, 3]);
    s.take('up.resnets.0.norm1.weight', [2]);
    s.take('conv_out.weight', [1]);
    expect(() => s.assertAllUsed()).not.toThrow();
  });

  it('assertAllUsed shows the first 10 of many', () => {
    const t: Parameters<typeof writeSafetensors>[0] = {};
    for (let i = 0; i < 25; i++) t[`k${String(i).padStart(2, '0')}`] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    const e = caught(() => new WeightStore(parseSafetensors(writeSafetensors(t), 'mem'), 'many').assertAllUsed());
    expect(e.message).toContain('25 weights');
    expect(e.message).toContain('k09');
    expect(e.message).not.toContain('k10');
    expect(e.message).toContain('15 more');
  });
});

describe('model folders', () => {
  const dirs: string[] = [];
  const tmp = async () => {
    const d = await mkdtemp(join(tmpdir(), 'fresco-io-'));
    dirs.push(d);
    return d;
  };
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('loads the diffusers reference folder', async () => {
    const m = await loadModelFolder('tests/fixtures/vae-kl-decode');
    expect(m.config._class_name).toBe('AutoencoderKL');
    expect(m.config.block_out_channels).toEqual([32, 64]);
    expect(m.weights.keys()).toHaveLength(124);
    expect(m.weights.take('decoder.conv_in.weight', [64, 4, 3, 3])).toHaveLength(64 * 4 * 9);
    expect(m.weights.unused()).toHaveLength(123);
  });

  it('falls back to the fp16 variant', async () => {
    const d = await tmp();
    await writeFile(join(d, 'config.json'), '{"a": 1}');
    await writeFile(join(d, 'diffusion_pytorch_model.fp16.safetensors'), writeSafetensors({ w: { dtype: 'F16', shape: [1], data: new Uint16Array([0xc000]) } }));
    const m = await loadModelFolder(d);
    expect([...m.weights.take('w', [1])]).toEqual([-2]);
  });

  it('missing folder, config or weights name the path', async () => {
    await expect(loadModelFolder('tests/fixtures/no-such-model')).rejects.toThrow(/no-such-model.*not found/);
    const d = await tmp();
    const err = await loadModelFolder(d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFolderError);
    expect((err as ModelFolderError).message).toContain(join(d, 'config.json'));
    await writeFile(join(d, 'config.json'), '{}');
    await expect(loadModelFolder(d)).rejects.toThrow(/diffusion_pytorch_model\.safetensors/);
  });

  it('config.json that is not a JSON object names the file', async () => {
    const d = await tmp();
    await writeFile(join(d, 'config.json'), '{"a": 1,}');
    const err = (await loadModelFolder(d).catch((e: unknown) => e)) as ModelFolderError;
    expect(err.code).toBe('bad-json');
    expect(err.message).toContain(join(d, 'config.json'));
    await writeFile(join(d, 'c.json'), '[1]');
    await expect(readJson(join(d, 'c.json'))).rejects.toThrow(/c\.json: expected a JSON object/);
    await expect(readJson(join(d, 'none.json'))).rejects.toThrow(/none\.json: not found/);
  });

  it('a corrupt weights file names the file', async () => {
    const d = await tmp();
    await writeFile(join(d, 'config.json'), '{}');
    await writeFile(join(d, 'diffusion_pytorch_model.safetensors'), new Uint8Array(3));
    await expect(loadModelFolder(d)).rejects.toThrow(/diffusion_pytorch_model\.safetensors: 3 bytes/);
  });
});
