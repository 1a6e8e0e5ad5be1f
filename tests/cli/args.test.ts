import { describe, expect, it } from 'vitest';
import { parseGenerateArgs, resolveClasses, UsageError } from '../../src/cli/args.ts';

const names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

describe('fresco generate flags', () => {
  it('parses every flag, in both --flag value and --flag=value forms', () => {
    const a = parseGenerateArgs(['--class', 'Bag', '--class=3', '--count', '2', '--seed=9', '--steps', '30', '--guidance', '2.5', '--scheduler', 'ddim', '--eta', '0.5', '--model', 'm', '--out', 'x.png', '--force', '--precision', 'f32']);
    expect(a).toEqual({ classes: ['Bag', '3'], count: 2, seed: 9, steps: 30, guidance: 2.5, scheduler: 'ddim', eta: 0.5, model: 'm', out: 'x.png', force: true, initImage: null, strength: null, mask: null, precision: 'f32', prompt: null, negativePrompt: null, width: null, height: null });
    expect(parseGenerateArgs([]).precision).toBe('auto');
    const t = parseGenerateArgs(['--prompt', 'a cat', '--negative-prompt=blurry', '--width', '24', '--height=16']);
    expect([t.prompt, t.negativePrompt, t.width, t.height]).toEqual(['a cat', 'blurry', 24, 16]);
  });

  const bad: [string[], RegExp][] = [
    [['--steps', 'ten'], /--steps needs an integer/],
    [['--steps', '0'], /--steps must be between 1 and 1000/],
    [['--count'], /--count needs an integer, got nothing/],
    [['--guidance', 'x'], /--guidance needs a number/],
    [['--scheduler', 'heun'], /--scheduler must be ddim, ddpm, euler-a, euler, lcm/],
    [['--out', 'x.jpg'], /--out needs a \.png file name/],
    [['--seed', '-1'], /--seed must be between/],
    [['--colour', 'red'], /unknown option "--colour"/],
    [['--class'], /--class needs a class name or index/],
    [['--scheduler', 'ddpm', '--eta', '0.3'], /--eta applies to --scheduler ddim only/],
    [['--precision', 'bf16'], /--precision must be auto, f16, f32, got "bf16"/],
    [['--prompt', 'a', '--class', '1'], /--prompt and --class do not go together/],
    [['--width', '64'], /--negative-prompt, --width and --height need --prompt/],
    [['--prompt'], /--prompt needs a text/],
  ];
  for (const [argv, msg] of bad) {
    it(`rejects ${argv.join(' ')}`, () => {
      expect(() => parseGenerateArgs(argv)).toThrow(UsageError);
      expect(() => parseGenerateArgs(argv)).toThrow(msg);
    });
  }

  it('resolves class names, prefixes and indices', () => {
    expect(resolveClasses(['sneaker', 'Ankle boot', 'trou', '0', 'T-shirt'], names, 11)).toEqual([7, 9, 1, 0, 0]);
    expect(() => resolveClasses(['S'], names, 11)).toThrow(/ambiguous/);
    expect(() => resolveClasses(['hat'], names, 11)).toThrow(/unknown class "hat"/);
    expect(() => resolveClasses(['11'], names, 11)).toThrow(/out of range/);
    expect(() => resolveClasses(['Bag'], null, 11)).toThrow(/no class names/);
  });
});
