// Typed reads of a diffusers/transformers config.json (or scheduler_config.json) with the
// library's defaults: each value's type is checked, values Fresco does not implement and keys the
// class does not know are rejected by name, so nothing is silently ignored. Models and schedulers
// each wrap it with their own error class.

export class ConfigReader {
  constructor(
    readonly config: Record<string, unknown>,
    /** Names the config in messages (a folder or a class). */
    readonly where: string,
    private readonly makeError: (message: string) => Error = (m) => new Error(m),
  ) {}

  /** `where`, under the name the scheduler code uses. */
  get who(): string {
    return this.where;
  }

  /** An error of this reader's class, its message prefixed with `where`. */
  error(message: string): Error {
    return this.makeError(`${this.where}: ${message}`);
  }

  private fail(key: string, want: string): never {
    throw this.error(`config option ${key} = ${JSON.stringify(this.config[key])} is not ${want}`);
  }

  /** null counts as absent: diffusers writes None for "use the default". */
  private present(key: string): boolean {
    return this.config[key] !== undefined && this.config[key] !== null;
  }

  num(key: string, fallback: number): number {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a finite number');
    return v;
  }

  int(key: string, fallback: number, min = 0): number {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `an integer >= ${min}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    // diffusers types some flags as int (DDPM's rescale_betas_zero_snr).
    if (v === 0 || v === 1) return v === 1;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  intList(key: string, fallback: number[]): number[] {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) this.fail(key, 'a non-empty list of positive integers');
    return v as number[];
  }

  strList(key: string, fallback: string[]): string[] {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string')) this.fail(key, 'a non-empty list of strings');
    return v as string[];
  }

  /** null or a list of finite numbers (trained_betas). */
  numbers(key: string): number[] | null {
    if (!this.present(key)) return null;
    const v = this.config[key];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) this.fail(key, 'null or a list of numbers');
    return v as number[];
  }

  /** One of `supported`; `known` are values the library has that Fresco does not implement. */
  choice<T extends string>(key: string, def: T, supported: readonly T[], known: readonly string[] = []): T {
    const v = this.present(key) ? this.config[key] : def;
    if (typeof v === 'string' && (supported as readonly string[]).includes(v)) return v as T;
    const what = typeof v === 'string' && known.includes(v) ? 'is not supported' : 'is unknown';
    throw this.error(`config option ${key} '${String(v)}' ${what} (supported: ${supported.join(', ')})`);
  }

  /** The raw value, where null is meaningful (e.g. attention_head_dim = None). */
  raw(key: string): unknown {
    return this.config[key];
  }

  has(key: string): boolean {
    return key in this.config;
  }

  /** Throws unless the option is absent, null, or one of `allowed`. */
  only(key: string, allowed: unknown[], why = 'is not supported'): void {
    const v = this.config[key];
    if (v === undefined || v === null) return;
    if (!allowed.some((a) => JSON.stringify(a) === JSON.stringify(v))) {
      throw this.error(`config option ${key} = ${JSON.stringify(v)} ${why} (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ') || 'none'})`);
    }
  }

  /** Rejects keys outside the class's constructor signature (beyond the library's bookkeeping keys). */
  knownKeys(keys: readonly string[]): void {
    const known = new Set([...keys, '_class_name', '_diffusers_version', '_name_or_path', '_use_default_values']);
    const unknown = Object.keys(this.config).filter((k) => !known.has(k) && this.config[k] !== null && this.config[k] !== false);
    if (unknown.length) throw this.error(`config option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not supported (not part of this model class in diffusers 0.25)`);
  }
}
