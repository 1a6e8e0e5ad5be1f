// Flag parsing for `fresco generate`, kept apart from running so bad input is a usage error
// before any GPU work starts.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface GenerateArgs {
  classes: string[];
  count: number;
  seed: number | null;
  steps: number | null;
  guidance: number | null;
  scheduler: 'ddim' | 'ddpm' | 'euler-a' | null;
  eta: number;
  model: string | null;
  out: string;
  force: boolean;
}

export const GENERATE_USAGE = `usage: fresco generate [options]
  --class NAME|INDEX   class to draw (repeatable; default: every class once)
  --count N            images per class (default 1)
  --seed N             RNG seed (default: random, printed)
  --steps N            denoising steps (default from the model card, else 25)
  --guidance G         classifier-free guidance scale (default from the model card, else 3)
  --scheduler ddim|ddpm|euler-a  (default from the model card, else ddim)
  --eta E              DDIM eta (default 0; DDIM only)
  --model DIR          diffusers-layout model folder (default weights/fashion-ldm)
  --out FILE.png       output PNG, a grid when several images (default fresco.png)
  --force              overwrite FILE.png if it exists`;

function int(flag: string, v: string | undefined, min: number, max: number): number {
  if (v === undefined || !/^-?\d+$/.test(v)) throw new UsageError(`${flag} needs an integer, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function num(flag: string, v: string | undefined, min: number, max: number): number {
  const n = v === undefined ? NaN : Number(v);
  if (!Number.isFinite(n) || v!.trim() === '') throw new UsageError(`${flag} needs a number, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  if (n < min || n > max) throw new UsageError(`${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function parseGenerateArgs(argv: string[]): GenerateArgs {
  const a: GenerateArgs = { classes: [], count: 1, seed: null, steps: null, guidance: null, scheduler: null, eta: 0, model: null, out: 'fresco.png', force: false };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i]!;
    let value: string | undefined;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    }
    const next = () => value ?? argv[++i];
    switch (flag) {
      case '--class': {
        const v = next();
        if (!v) throw new UsageError('--class needs a class name or index');
        a.classes.push(v);
        break;
      }
      case '--count': a.count = int(flag, next(), 1, 64); break;
      case '--seed': a.seed = int(flag, next(), 0, 2 ** 32 - 1); break;
      case '--steps': a.steps = int(flag, next(), 1, 1000); break;
      case '--guidance': a.guidance = num(flag, next(), 0, 100); break;
      case '--eta': a.eta = num(flag, next(), 0, 1); break;
      case '--scheduler': {
        const v = next();
        if (v !== 'ddim' && v !== 'ddpm' && v !== 'euler-a') throw new UsageError(`--scheduler must be ddim, ddpm or euler-a, got ${JSON.stringify(v)}`);
        a.scheduler = v;
        break;
      }
      case '--model': {
        const v = next();
        if (!v) throw new UsageError('--model needs a folder');
        a.model = v;
        break;
      }
      case '--out': {
        const v = next();
        if (!v || !v.toLowerCase().endsWith('.png')) throw new UsageError(`--out needs a .png file name, got ${JSON.stringify(v)}`);
        a.out = v;
        break;
      }
      case '--force': a.force = true; break;
      default: throw new UsageError(`unknown option ${JSON.stringify(argv[i])}`);
    }
  }
  if (a.eta > 0 && a.scheduler !== null && a.scheduler !== 'ddim') throw new UsageError('--eta applies to --scheduler ddim only');
  return a;
}

/** Resolves class names (case-insensitive, or a unique prefix) and indices to labels. */
export function resolveClasses(requested: string[], names: string[] | null, numClasses: number): number[] {
  return requested.map((r) => {
    if (/^\d+$/.test(r)) {
      const n = Number(r);
      if (n >= numClasses) throw new UsageError(`class index ${n} is out of range (0..${numClasses - 1})`);
      return n;
    }
    if (!names) throw new UsageError(`this model has no class names; use an index 0..${numClasses - 1}`);
    const key = r.toLowerCase();
    const exact = names.findIndex((n) => n.toLowerCase() === key);
    if (exact >= 0) return exact;
    const partial = names.map((n, i) => [n, i] as const).filter(([n]) => n.toLowerCase().startsWith(key) || n.toLowerCase().split('/').includes(key));
    if (partial.length === 1) return partial[0]![1];
    throw new UsageError(`unknown class ${JSON.stringify(r)}${partial.length > 1 ? ' (ambiguous)' : ''}; classes: ${names.map((n, i) => `${i} ${n}`).join(', ')}`);
  });
}
