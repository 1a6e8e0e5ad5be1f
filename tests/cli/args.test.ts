import { describe, expect, it } from 'vitest';
import { parseGenerateArgs, resolveClasses } from '../../src/cli/args.ts';
import { UsageError } from '../../src/errors.ts';

const names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

describe('fresco generate flags', () => {
  it('parses every flag, in both --flag value and --flag=value forms', () => {
    const a = parseGenerateArgs(['--class', 'Bag', '--class=3', '--count', '2', '--seed=9', '--steps', '30', '--guidance', '2.5', '--scheduler', 'ddim', '--eta', '0.5', '--model', 'm', '--out', 'x.png', '--force', '--precision', 'f32']);
    expect(a).toEqual({ classes: ['Bag', '3'], count: 2, seed: 9, steps: 30, guidance: 2.5, scheduler: 'ddim', eta: 0.5, model: 'm', out: 'x.png', force: true, initImage: null, strength: null, mask: null, resize: false, precision: 'f32', prompt: null, negativePrompt: null, width: null, height: null, prompt2: null, negativePrompt2: null, originalSize: null, cropTopLeft: null, targetSize: null, loras: [], controlnets: [], controlImages: [], controlScales: [], controlStarts: [], controlEnds: [], canny: null });
    expect(parseGenerateArgs([]).precision).toBe('auto');
    // --lora FILE[:SCALE], repeatable; a colon not followed by a number belongs to the file (URLs).
    expect(parseGenerateArgs(['--lora', 'a.safetensors', '--lora=b.safetensors:0.5', '--lora', 'https://h/c.safetensors:-1e-1']).loras).toEqual([
      { file: 'a.safetensors', scale: 1 },
      { file: 'b.safetensors', scale: 0.5 },
      { file: 'https://h/c.safetensors', scale: -0.1 },
    ]);
    const t = parseGenerateArgs(['--prompt', 'a cat', '--negative-prompt=blurry', '--width', '24', '--height=16']);
    expect([t.prompt, t.negativePrompt, t.width, t.height]).toEqual(['a cat', 'blurry', 24, 16]);
  });

  it('parses the SDXL flags: sizes WxH (width first) into diffusers\' (height, width), the crop as (top, left)', () => {
    const x = parseGenerateArgs(['--prompt', 'a cat', '--prompt-2', 'oil', '--negative-prompt-2=dull', '--original-size', '1024x768', '--crop-top-left=64,32', '--target-size', '512X256']);
    expect([x.prompt2, x.negativePrompt2, x.originalSize, x.cropTopLeft, x.targetSize]).toEqual(['oil', 'dull', [768, 1024], [64, 32], [256, 512]]);
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
    [['--class', '--seed', '3'], /^--class needs a value before the next option, got --seed$/],
    [['--prompt', '--width', '64'], /--prompt needs a value before the next option, got --width/],
    [['a', 'cat'], /^unexpected argument "a": options start with --/],
    [['--class', 'Bag', '3'], /unexpected argument "3"/],
    [['--resize'], /--resize needs --init-image/],
    [['--class'], /--class needs a class name or index/],
    [['--scheduler', 'ddpm', '--eta', '0.3'], /--eta applies to --scheduler ddim only/],
    [['--precision', 'bf16'], /--precision must be auto, f16, f32, got "bf16"/],
    [['--prompt', 'a', '--class', '1'], /--prompt and --class do not go together/],
    [['--width', '64'], /^--width needs --prompt \(text-to-image models\)$/],
    [['--negative-prompt', 'x', '--height', '64'], /^--negative-prompt, --height need --prompt/],
    [['--original-size', '64x64'], /^--original-size needs --prompt/],
    [['--prompt-2', 'x', '--target-size', '8x8'], /^--prompt-2, --target-size need --prompt/],
    [['--prompt', 'a', '--original-size', '1024,768'], /--original-size needs WIDTHxHEIGHT in pixels, like 1024x768, got "1024,768"/],
    [['--prompt', 'a', '--target-size', '0x8'], /--target-size sizes must be between 1 and 16384/],
    [['--prompt', 'a', '--crop-top-left', '-1,0'], /--crop-top-left needs TOP,LEFT in pixels/],
    [['--prompt', 'a', '--crop-top-left'], /--crop-top-left needs TOP,LEFT in pixels, like 0,0 or 64,32, got nothing/],
    [['--prompt', 'a', '--negative-prompt-2'], /--negative-prompt-2 needs a text/],
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

  it('accepts the null class (index or "null") and names it, with the same range in every message', () => {
    expect(resolveClasses(['10', 'null', 'NULL'], names, 11)).toEqual([10, 10, 10]);
    expect(resolveClasses(['null'], names, 11, 0)).toEqual([0]);
    expect(() => resolveClasses(['11'], names, 11)).toThrow('class 11 is out of range (0..10; 10 is the null class: an unconditional sample)');
    expect(() => resolveClasses(['hat'], names, 11)).toThrow(/classes: 0 T-shirt\/top, .*, 9 Ankle boot, 10 null class \(unconditional\)$/);
    expect(() => resolveClasses(['Bag'], null, 11)).toThrow('this model has no class names; use a label 0..10 (10 is the null class: an unconditional sample)');
    expect(resolveClasses(['null', '3'], null, 11)).toEqual([10, 3]);
  });
});
