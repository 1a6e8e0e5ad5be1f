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

  it('exits 2 with usage on bad flags, before touching the GPU', () => {
    const r = fresco('generate', '--steps', 'many');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--steps needs an integer/);
    expect(r.stderr).toMatch(/usage: fresco generate/);
    expect(existsSync('fresco.png')).toBe(false);
  });
});
