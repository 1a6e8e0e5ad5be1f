// The one prologue of every model: the storage type resolved from the device and the options, the
// root WeightLoader over the store in it, and the weights freed when building fails. Model
// constructors take a ModelLoader and a config from their read…Config and only build.
import type { Runtime } from '../gpu/runtime.ts';
import type { WeightStore } from '../io/weights.ts';
import { WeightLoader } from './loader.ts';
import { resolvePrecision, WEIGHT_FORMATS, type ModelOptions, type ResolvedPrecision, type WeightFormat } from './precision.ts';
import { ConfigError } from '../errors.ts';

/** The root WeightLoader of a model, with the precision it stores the weights in. */
export class ModelLoader extends WeightLoader {
  constructor(rt: Runtime, store: WeightStore, readonly precision: ResolvedPrecision, weights?: WeightFormat) {
    super(rt, store, '', precision.dtype, precision.weights ?? precision.dtype, weights);
  }
}

/** The loader a model is built from: `opts.precision` resolved for this device (f32 where absent), GEMM weights as `opts.weights` says. */
export function modelLoader(rt: Runtime, store: WeightStore, opts: ModelOptions = {}): ModelLoader {
  if (opts.weights !== undefined && !WEIGHT_FORMATS.includes(opts.weights)) throw new ConfigError(`weights must be one of ${WEIGHT_FORMATS.join(', ')}, got ${JSON.stringify(opts.weights)}`);
  return new ModelLoader(rt, store, resolvePrecision(rt.gpu.features, opts.precision), opts.weights);
}

/** The options of a model that keeps float weights (a VAE, a text encoder): a pre-quantized file's are dequantized. */
export function floatWeights<O extends ModelOptions>(opts: O): O {
  return { ...opts, weights: 'float' };
}

/**
 * Builds `Model` from a config its reader returned; a constructor that throws (a missing,
 * misshapen or unused weight) leaves nothing uploaded.
 */
export function buildModel<C, M>(Model: new (w: ModelLoader, config: C) => M, rt: Runtime, store: WeightStore, config: C, opts: ModelOptions = {}): M {
  const w = modelLoader(rt, store, opts);
  try {
    return new Model(w, config);
  } catch (e) {
    w.destroy();
    throw e;
  }
}

/** The VAEs' check that every weight of the folder was used (keys `ignore` accepts may be left over). */
export function assertWeightsUsed(store: WeightStore, where: string, ignore: (key: string) => boolean = () => false): void {
  const unused = store.unused().filter((k) => !ignore(k));
  if (unused.length) throw new ConfigError(`${where}: ${unused.length} weights are not used by the model built from config.json: ${unused.slice(0, 10).join(', ')}`);
}
