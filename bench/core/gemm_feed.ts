// The benches' --gemm-feed option: how the GEMM core runs (Runtime.gemmFeed and gemmAdapt), so one
// machine can time each way. 'direct': global reads (the CPU adapters' default); 'tiled': workgroup
// memory, 128 x 128 tiles over all of K; 'sized': tiled, with tiles and K splits sized to each GEMM
// (the GPUs' default); 'auto': whatever the runtime picked for the adapter.
import type { GemmMath, Runtime } from '../../src/gpu/runtime.ts';

export type GemmFeedName = 'direct' | 'tiled' | 'sized';

/** The way the runtime runs GEMMs now. */
export function gemmFeedName(rt: Runtime): GemmFeedName {
  return rt.gemmFeed === 'direct' ? 'direct' : rt.gemmAdapt ? 'sized' : 'tiled';
}

/** Sets the runtime per `--gemm-feed <value>` in argv (default auto) and returns the way in effect. */
export function applyGemmFeedArg(rt: Runtime, argv: readonly string[] = process.argv): { name: GemmFeedName; forced: boolean } {
  const i = argv.indexOf('--gemm-feed');
  const v = i >= 0 ? argv[i + 1] : 'auto';
  if (v !== 'auto' && v !== 'direct' && v !== 'tiled' && v !== 'sized') throw new Error(`--gemm-feed must be auto, direct, tiled or sized; got ${JSON.stringify(v)}`);
  if (v !== 'auto') {
    rt.gemmFeed = v === 'direct' ? 'direct' : 'tiled';
    rt.gemmAdapt = v === 'sized';
  }
  return { name: gemmFeedName(rt), forced: v !== 'auto' };
}

/**
 * Sets Runtime.gemmMath per `--gemm-math f32|f16` in argv (default f32: the runtime's default) and
 * returns it: f16 has the tiled feed multiply f16 activations in f16 (F16_MATH in shaders/gemm.wgsl).
 */
export function applyGemmMathArg(rt: Runtime, argv: readonly string[] = process.argv): GemmMath {
  const i = argv.indexOf('--gemm-math');
  const v = i >= 0 ? argv[i + 1] : rt.gemmMath;
  if (v !== 'f32' && v !== 'f16') throw new Error(`--gemm-math must be f32 or f16; got ${JSON.stringify(v)}`);
  rt.gemmMath = v;
  return v;
}

/**
 * Sets Runtime.winograd per `--winograd on|off|auto` in argv (default auto: the runtime's choice
 * for the adapter) and returns whether stride-1 3x3 convs run as Winograd convs, and whether forced.
 */
export function applyWinogradArg(rt: Runtime, argv: readonly string[] = process.argv): { on: boolean; forced: boolean } {
  const i = argv.indexOf('--winograd');
  const v = i >= 0 ? argv[i + 1] : 'auto';
  if (v !== 'auto' && v !== 'on' && v !== 'off') throw new Error(`--winograd must be on, off or auto; got ${JSON.stringify(v)}`);
  if (v !== 'auto') rt.winograd = v === 'on';
  return { on: rt.winograd, forced: v !== 'auto' };
}
