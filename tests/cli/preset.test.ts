// The CLI's --preset and Hub sources: parsing, flag mistakes as usage errors (status 2) before any
// download or GPU work, and a turbo run on the tiny SD fixture (one step, no guidance batch).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGenerateArgs } from '../../src/cli/args.ts';
import { UsageError } from '../../src/errors.ts';
import { runFresco } from '../helpers/cli.ts';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('--preset', () => {
  it('parses a preset name, none (null), and leaves it out when not given (detected)', () => {
    expect(parseGenerateArgs(['--preset', 'sdxl-turbo']).preset).toBe('sdxl-turbo');
    expect(parseGenerateArgs(['--preset=lcm']).preset).toBe('lcm');
    expect(parseGenerateArgs(['--preset', 'none']).preset).toBeNull();
    expect('preset' in parseGenerateArgs([])).toBe(false);
    expect(() => parseGenerateArgs(['--preset', 'turbo'])).toThrow(UsageError);
    expect(() => parseGenerateArgs(['--preset', 'turbo'])).toThrow('--preset must be sd-turbo, sdxl-turbo, lcm or none, got "turbo"');
  });

  it('a malformed hf: source and a preset for the other model kind are usage errors (status 2)', () => {
    const bad = runFresco(['generate', '--model', 'hf:o/n@a@b', '--prompt', 'x']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^error: hf:o\/n@a@b: more than one '@'/m);
    const xl = runFresco(['generate', '--model', 'tests/fixtures/sd-tiny', '--preset', 'sdxl-turbo', '--prompt', 'x']);
    expect(xl.status).toBe(2);
    expect(xl.stderr).toMatch(/error: preset 'sdxl-turbo' is for Stable Diffusion XL pipelines.*\(use 'sd-turbo'\)/);
    const cls = runFresco(['generate', '--preset', 'lcm', '--class', '1']);
    expect(cls.status).toBe(2);
    expect(cls.stderr).toMatch(/error: preset 'lcm' applies to text-to-image pipelines/);
  });

  it('runs the turbo preset: one euler-a step at guidance 0, batch 1 without a guidance half', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fresco-cli-preset-'));
    temps.push(dir);
    const r = runFresco(['generate', '--model', resolve('tests/fixtures/sd-tiny'), '--preset', 'sd-turbo', '--prompt', 'a lighthouse', '--seed', '4', '--precision', 'f32', '--out', 'turbo.png'], { cwd: dir });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('preset: sd-turbo (asked for)');
    expect(r.stderr).toMatch(/seed 4, 1 euler-a steps, guidance 0/);
    expect(r.stderr).toMatch(/ms per U-Net call \(batch 1\)/);
  });
});
