// The activation names kernels fuse and the config names that select them; no GPU code, so the
// model config readers can use it.

/**
 * The activations a kernel can fuse (act in shaders/common.wgsl): diffusers' get_activation names
 * (silu/swish → SiLU, mish, gelu in its exact erf form, relu) plus transformers' quick_gelu.
 */
export type Activation = 'silu' | 'mish' | 'gelu' | 'relu' | 'quick_gelu';

/** diffusers' get_activation: config act_fn names (lower-cased) to the activation, 'swish' being SiLU. */
export function activationOf(name: string): Activation | undefined {
  const n = name.toLowerCase();
  return n === 'swish' || n === 'silu' ? 'silu' : n === 'mish' || n === 'gelu' || n === 'relu' ? n : undefined;
}

/** The template parameters selecting `act`: ACT (the name) and ACT_<NAME>; none without one. */
export function activationParams(act: Activation | undefined): Record<string, string | boolean> {
  return act ? { ACT: act, [`ACT_${act.toUpperCase()}`]: true } : {};
}
