// The CLI as a user runs it: a PNG comes out, an existing file is not overwritten without
// --force, bad flags are usage errors with exit status 2.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodePng } from '../../src/io/png.ts';

const fresco = (...args: string[]) => spawnSync(process.execPath, ['bin/fresco.js', ...args], { encoding: 'utf8', timeout: 300_000 });

describe('fresco generate (CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fresco-cli-'));

  it('writes a grid PNG and reports adapter and timings', () => {
    const out = join(dir, 'two.png');
    const r = fresco('generate', '--class', 'Trouser', '--class', '9', '--steps', '2', '--seed', '4', '--out', out);
    expect(r.stderr).toMatch(/adapter/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/ms\/step/);
    expect(r.stderr).toMatch(/total \d/);
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
    const r = fresco('generate', '--steps', 'many');
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('error: --steps needs an integer, got "many"\nrun with --help for the options\n');
    expect(existsSync('fresco.png')).toBe(false);
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
});
