// --controlnet on the command line: the flags parsed and checked before the GPU starts, a run that
// writes its image and says which nets steered it, and the usage errors.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGenerateArgs } from '../../src/cli/args.ts';
import { encodePng } from '../../src/io/png.ts';
import { runFresco } from '../helpers/cli.ts';
import { UsageError } from '../../src/errors.ts';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));
const MODEL = resolve('tests/fixtures/sd-tiny');
const CN = resolve('tests/fixtures/variants/controlnet-tiny');

function png(dir: string, name: string, w: number, h: number): string {
  const px = new Uint8Array(w * h * 3).map((_, i) => (i * 53) % 256);
  writeFileSync(join(dir, name), encodePng(w, h, 3, px));
  return name;
}

describe('fresco generate --controlnet', () => {
  it('parses the ControlNet flags: nets and images in order, scales once for all or once per net', () => {
    const a = parseGenerateArgs(['--prompt', 'a', '--controlnet', 'cn1', '--control-image', 'a.png', '--controlnet=cn2', '--control-image=b.png', '--control-scale', '0.5', '--control-scale', '1.5', '--control-start', '0.1', '--control-end=0.9']);
    expect([a.controlnets, a.controlImages, a.controlScales, a.controlStarts, a.controlEnds, a.canny]).toEqual([['cn1', 'cn2'], ['a.png', 'b.png'], [0.5, 1.5], [0.1], [0.9], null]);
    expect(parseGenerateArgs(['--prompt', 'a', '--controlnet', 'cn', '--control-image', 'a.png', '--canny=50,150.5']).canny).toEqual([50, 150.5]);
    const bad: [string[], RegExp][] = [
      [['--prompt', 'a', '--control-image', 'a.png'], /--control-image needs --controlnet/],
      [['--prompt', 'a', '--control-scale', '2'], /--control-scale needs --controlnet/],
      [['--prompt', 'a', '--controlnet', 'cn'], /1 --controlnet given: --control-image is needed once per ControlNet, in the same order \(got 0\)/],
      [['--prompt', 'a', '--controlnet', 'cn', '--control-image', 'a.jpg'], /--control-image needs a \.png file/],
      [['--prompt', 'a', '--controlnet', 'c1', '--controlnet', 'c2', '--control-image', 'a.png', '--control-image', 'b.png', '--control-scale', '1', '--control-scale', '1', '--control-scale', '1'], /--control-scale given 3 times for 2 --controlnet/],
      [['--prompt', 'a', '--controlnet', 'cn', '--control-image', 'a.png', '--control-end', '1.5'], /--control-end must be between 0 and 1/],
      [['--prompt', 'a', '--controlnet', 'cn', '--control-image', 'a.png', '--init-image', 'i.png'], /--controlnet does not go with --init-image/],
      [['--class', '1', '--controlnet', 'cn', '--control-image', 'a.png'], /--controlnet needs --prompt/],
      [['--prompt', 'a', '--canny', '100,200'], /--canny needs --controlnet/],
      [['--prompt', 'a', '--controlnet', 'cn', '--control-image', 'a.png', '--canny', '100'], /--canny needs LOW,HIGH thresholds, like 100,200, got "100"/],
    ];
    for (const [argv, message] of bad) {
      expect(() => parseGenerateArgs(argv), argv.join(' ')).toThrow(UsageError);
      expect(() => parseGenerateArgs(argv), argv.join(' ')).toThrow(message);
    }
  });

  it('generates with a ControlNet and says so; a control image of another size needs --resize; a net that does not fit exits before the GPU', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fresco-cli-cn-'));
    temps.push(dir);
    png(dir, 'edges.png', 16, 16);
    png(dir, 'big.png', 20, 20);
    const base = ['generate', '--model', MODEL, '--prompt', 'a boat', '--steps', '2', '--seed', '1', '--precision', 'f32', '--controlnet', CN];
    const r = runFresco([...base, '--control-image', 'edges.png', '--control-scale', '0.7', '--control-end', '0.5', '--out', 'a.png'], { cwd: dir });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`ControlNet ${CN} on edges.png (scale 0.7, steps 0-0.5)`);
    expect(existsSync(join(dir, 'a.png'))).toBe(true);
    const sized = runFresco([...base, '--control-image', 'big.png', '--width', '16', '--height', '16', '--out', 'b.png'], { cwd: dir });
    expect(sized.status).toBe(2);
    expect(sized.stderr).toContain('--control-image big.png is 20x20; this model needs 16x16 (pass --resize to resize it)');
    const resized = runFresco([...base, '--control-image', 'big.png', '--width', '16', '--height', '16', '--resize', '--canny', '100,200', '--out', 'c.png'], { cwd: dir });
    expect(resized.status, resized.stderr).toBe(0);
    expect(resized.stderr).toContain('control image: Canny edges (100, 200)');
    const misfit = runFresco([...base.slice(0, -1), resolve('tests/fixtures/variants/controlnet-bgr-mid-resnet'), '--control-image', 'edges.png', '--out', 'd.png'], { cwd: dir });
    expect(misfit.status).not.toBe(0);
    expect(misfit.stderr).toMatch(/controlnet-bgr-mid-resnet: gives 9 down residuals/);
    expect(misfit.stderr).not.toContain('adapter:');
  });
});
