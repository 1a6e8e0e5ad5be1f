// --lora on the command line: merged before generating and reported; a file for another model is
// a clear error, not an image.
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { runFresco } from '../helpers/cli.ts';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** sd-tiny's first down block's attn1.to_q is [32, 32]: a kohya pair for it. */
function lora(module: string, width: number): Uint8Array {
  const n = (k: number) => Float32Array.from({ length: k }, (_, i) => Math.sin(i + 1) * 0.3);
  return writeSafetensors({
    [`lora_unet_${module}.lora_down.weight`]: { dtype: 'F32', shape: [2, width], data: n(2 * width) },
    [`lora_unet_${module}.lora_up.weight`]: { dtype: 'F32', shape: [width, 2], data: n(2 * width) },
    [`lora_unet_${module}.alpha`]: { dtype: 'F32', shape: [], data: Float32Array.of(1) },
  });
}

describe('fresco generate --lora', () => {
  it('merges each LoRA at its scale and says what it adapted; a foreign one exits with its name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fresco-cli-lora-'));
    temps.push(dir);
    writeFileSync(join(dir, 'good.safetensors'), lora('down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q', 32));
    writeFileSync(join(dir, 'foreign.safetensors'), lora('double_blocks_0_img_attn_qkv', 8));
    const model = resolve('tests/fixtures/sd-tiny');
    const r = runFresco(['generate', '--model', model, '--prompt', 'a boat', '--steps', '2', '--seed', '1', '--precision', 'f32', '--lora', 'good.safetensors:0.5', '--out', 'a.png'], { cwd: dir });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('LoRA good.safetensors at scale 0.5: 1 unet layers');
    expect(existsSync(join(dir, 'a.png'))).toBe(true);
    const bad = runFresco(['generate', '--model', model, '--prompt', 'a boat', '--steps', '2', '--lora', 'foreign.safetensors', '--out', 'b.png'], { cwd: dir });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/foreign\.safetensors: none of its 1 LoRA layers names a module of this model/);
    expect(existsSync(join(dir, 'b.png'))).toBe(false);
  });
});
