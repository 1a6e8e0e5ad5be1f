// What every model config reader shares: the reader (raising ConfigError) with diffusers' activation
// names, the header checks each class makes and the block type check. No GPU code: configs are
// read and checked before anything is uploaded (tests/models/config_errors.test.ts needs no device).
import { activationOf, type Activation } from '../kernels/activation.ts';
import { ConfigReader as BaseConfigReader } from '../io/config_reader.ts';
import { ConfigError } from '../errors.ts';

/** The shared config reader (src/io/config_reader.ts), raising ConfigError. */
export class ConfigReader extends BaseConfigReader {
  constructor(config: Record<string, unknown>, where: string) {
    super(config, where, (m) => new ConfigError(m));
  }

  /**
   * An activation option such as act_fn, as diffusers' get_activation names them ('swish' and
   * 'silu' are SiLU; 'gelu' is the exact erf GELU). Missing or null: `fallback` (diffusers' default for the class).
   */
  activation(key = 'act_fn', fallback = 'silu'): Activation {
    const v = this.raw(key) ?? fallback;
    // get_activation lower-cases the name first ('SiLU' is SiLU); anything else is refused by name.
    const act = typeof v === 'string' ? activationOf(v) : undefined;
    if (!act) this.only(key, ACT_FN_NAMES);
    return act!;
  }

  /** An optional positive integer: null where absent or null (diffusers' None: the feature is off). */
  optionalInt(key: string): number | null {
    const v = this.raw(key);
    return v === undefined || v === null ? null : this.int(key, 0, 1);
  }
}

/** get_activation's names in diffusers v0.25.1 (activations.ACTIVATION_FUNCTIONS). */
export const ACT_FN_NAMES = ['silu', 'swish', 'mish', 'gelu', 'relu'];

/** A diffusers model config.json's reader, after the checks every class makes: its _class_name and its constructor's keys. */
export function modelConfigReader(config: Record<string, unknown>, where: string, className: string, keys: readonly string[]): ConfigReader {
  const c = new ConfigReader(config, where);
  c.only('_class_name', [className]);
  c.knownKeys(keys);
  return c;
}

/** Refuses block types outside `allowed` (the ones this model class builds), as get_down_block / get_up_block would. */
export function checkBlockTypes(where: string, kind: 'down' | 'up', types: readonly string[], allowed: readonly string[]): void {
  for (const t of types) if (!allowed.includes(t)) throw new ConfigError(`${where}: ${kind} block type ${t} is not supported (supported: ${allowed.join(', ')})`);
}

/** scaling_factor, which the pipelines divide the latents by: 0 is refused. */
export function scalingFactor(c: ConfigReader, fallback: number): number {
  const s = c.num('scaling_factor', fallback);
  if (s === 0) throw new ConfigError(`${c.where}: config option scaling_factor = 0 is not usable`);
  return s;
}
