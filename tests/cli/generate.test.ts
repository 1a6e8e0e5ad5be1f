// The CLI as a user runs it: a PNG comes out, an existing file is not overwritten without
// --force, bad flags are usage errors with exit status 2.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodePng, encodePng } from '../../src/io/png.ts';
import { runFresco } from '../helpers/cli.ts';

const fresco = (...args: string[]) => runFresco(args);

describe('fresco generate (CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fresco-cli-'));

  it('writes a grid PNG and reports adapter and timings', () => {
    const out = join(dir, 'two.png');
    const r = fresco('generate', '--class', 'Trouser', '--class', '9', '--steps', '2', '--seed', '4', '--out', out);
    expect(r.stderr).toMatch(/adapter/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/ms\/step/);
    expect(r.stderr).toMatch(/total \d/);
    // Dawn's notes about lavapipe's dynamic-buffer limits are filtered out by bin/fresco.js.
    expect(r.stderr).not.toMatch(/artificially reduced/);
    const png = decodePng(new Uint8Array(readFileSync(out)));
    expect([png.width, png.height]).toEqual([64, 32]);
  });

  it('refuses to overwrite an existing file without --force', () => {
    const out = join(dir, 'keep.png');
    writeFileSync(out, 'precious');
    const r = fresco('generate', '--class', '0', '--steps', '1', '--out', out);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/already exists; pass --force/);
    expect(readFileSync(out, 'utf8')).toBe('precious');
    const forced = fresco('generate', '--class', '0', '--steps', '1', '--out', out, '--force');
    expect(forced.status, forced.stderr).toBe(0);
    expect(readFileSync(out).subarray(1, 4).toString()).toBe('PNG');
  });

  it('exits 2 on bad flags with the error and a pointer to --help (not the whole help), before touching the GPU', () => {
    // In a folder of its own: a fresco.png a user left in the repository must not matter.
    const cwd = mkdtempSync(join(tmpdir(), 'fresco-cwd-'));
    const r = runFresco(['generate', '--steps', 'many'], { cwd });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('error: --steps needs an integer, got "many"\nrun with --help for the options\n');
    expect(existsSync(join(cwd, 'fresco.png'))).toBe(false);
    const help = fresco('generate', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: fresco generate/);
  });

  it('refuses an --out whose folder does not exist, naming it, and creates nothing', () => {
    const missing = join(dir, 'no-such-folder');
    const r = fresco('generate', '--class', '0', '--steps', '1', '--out', join(missing, 'x.png'));
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`error: --out ${join(missing, 'x.png')}: the folder ${missing} does not exist\nrun with --help for the options\n`);
    expect(existsSync(missing)).toBe(false);
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const f = fresco('generate', '--class', '0', '--steps', '1', '--out', join(file, 'x.png'));
    expect(f.status).toBe(2);
    expect(f.stderr).toMatch(/is not a folder/);
  });

  it('draws the null class (--class 10 or null) as an unconditional sample, and says so', () => {
    const out = join(dir, 'null.png');
    const r = fresco('generate', '--class', '10', '--class', 'null', '--steps', '1', '--seed', '2', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/generating 2 image\(s\): null class \(unconditional\), null class \(unconditional\);/);
    const bad = fresco('generate', '--class', 'hat', '--out', join(dir, 'never.png'));
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown class "hat"; classes: 0 T-shirt\/top, .*, 9 Ankle boot, 10 null class \(unconditional\)\n/);
  });

  // No Vulkan driver at all: these must be refused from the folder's JSON alone, before the GPU.
  const noGpu = { env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json' } };

  it('refuses a bad class, a missing init image or a prompt for a class model before the GPU starts, before the --out check', () => {
    const taken = join(dir, 'taken.png');
    writeFileSync(taken, 'precious');
    const cls = runFresco(['generate', '--class', 'hat', '--out', taken], noGpu);
    expect(cls.status, cls.stderr).toBe(2);
    expect(cls.stderr).toMatch(/^error: unknown class "hat"/);
    const init = runFresco(['generate', '--class', '0', '--init-image', join(dir, 'nope.png'), '--out', taken], noGpu);
    expect(init.status, init.stderr).toBe(2);
    expect(init.stderr).toMatch(/^error: --init-image .*nope\.png does not exist/);
    const prompt = runFresco(['generate', '--prompt', 'a shoe', '--out', taken], noGpu);
    expect(prompt.stderr).toMatch(/^error: .* is class-conditional: it takes --class, not --prompt/);
    // The library's own option checks run before the GPU too: eta with sd-tiny's default (pndm),
    // and a strength that leaves no step.
    const eta = runFresco(['generate', '--model', 'tests/fixtures/sd-tiny', '--prompt', 'a', '--eta', '0.5', '--out', taken], noGpu);
    expect(eta.status, eta.stderr).toBe(2);
    expect(eta.stderr).toMatch(/^error: eta applies to the ddim scheduler only; this run uses pndm/);
    const init32 = join(dir, 'init32.png');
    writeFileSync(init32, encodePng(32, 32, 1, new Uint8Array(32 * 32).fill(90)));
    const weak = runFresco(['generate', '--class', '0', '--steps', '3', '--init-image', init32, '--strength', '0.2', '--out', taken], noGpu);
    expect(weak.status, weak.stderr).toBe(2);
    expect(weak.stderr).toMatch(/^error: strength 0\.2 with 3 steps leaves no denoising step/);
    // Only then the existing file.
    const out = runFresco(['generate', '--class', '0', '--out', taken], noGpu);
    expect(out.stderr).toMatch(/^error: .*taken\.png already exists; pass --force/);
    expect(readFileSync(taken, 'utf8')).toBe('precious');
  });

  it('--version prints the package version; a stray word is named as such', () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    for (const args of [['--version'], ['generate', '--version']]) {
      const r = runFresco(args, noGpu);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(`fresco ${version}\n`);
    }
    const stray = runFresco(['generate', '--class', 'Bag', 'Coat'], noGpu);
    expect(stray.status).toBe(2);
    expect(stray.stderr).toMatch(/^error: unexpected argument "Coat": options start with --/);
  });

  it('writes progress as plain lines, without carriage returns, when stderr is not a terminal', () => {
    const r = fresco('generate', '--class', '1', '--steps', '8', '--seed', '1', '--out', join(dir, 'log.png'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/\r/);
    expect(r.stderr.match(/^step \d+\/8 /gm)).toEqual(['step 2/8 ', 'step 4/8 ', 'step 6/8 ', 'step 8/8 ']);
  });
});
