// WGSL written by TypeScript, #include-able beside shaders/*.wgsl: where a layout is shared by
// host and shader (the step row), TypeScript holds the one definition and the shader includes
// text generated from it instead of restating the numbers.
import { stepRowWgsl } from './step_row.ts';

export const generatedShaderSources: Readonly<Record<string, string>> = {
  step_row: stepRowWgsl(),
};
