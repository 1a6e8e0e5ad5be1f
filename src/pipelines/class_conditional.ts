// Class-conditional latent diffusion (fashion-ldm and other UNet2DModel folders with class
// embeddings): the class labels, with the null class as the unconditional half of guidance, are
// the whole of the conditioning; the loop is src/pipelines/denoise.ts.
import type { Runtime } from '../gpu/runtime.ts';
import type { Tensor } from '../graph/tensor.ts';
import { denoise, type DenoiseOptions, type GenerationResult } from './denoise.ts';
import type { LdmModel } from './ldm_folder.ts';

export type { GenerationResult, StepInfo } from './denoise.ts';
export { CancelledError } from '../errors.ts';

export interface ClassConditionalOptions extends DenoiseOptions {
  classLabels: number[];
  /** Label of the unconditional half of classifier-free guidance. */
  nullClass?: number;
}

export async function generateClassConditional(rt: Runtime, model: LdmModel, opts: ClassConditionalOptions): Promise<GenerationResult> {
  const { unet, vae } = model;
  const B = opts.classLabels.length;
  if (B === 0) throw new Error('at least one class label is needed');
  const numClasses = unet.numClasses;
  if (numClasses === null) throw new Error('this U-Net is not class-conditional (num_class_embeds is not set)');
  const cfg = (opts.guidanceScale ?? 1) > 1;
  const nullClass = opts.nullClass ?? numClasses - 1;
  for (const l of [...opts.classLabels, ...(cfg ? [nullClass] : [])]) {
    if (!Number.isInteger(l) || l < 0 || l >= numClasses) throw new Error(`class label ${l} is out of range: this model has ${numClasses} class embeddings (0..${numClasses - 1})`);
  }
  const labels = Uint32Array.from([...opts.classLabels, ...(cfg ? opts.classLabels.map(() => nullClass) : [])]);
  const labelT: Tensor = { buffer: rt.upload(labels, 'class-labels'), shape: [labels.length], label: 'class-labels' };
  try {
    return await denoise(
      rt,
      {
        batch: B,
        latentChannels: unet.inChannels,
        latentSize: [unet.sampleSize, unet.sampleSize],
        vae,
        schedulerConfig: model.schedulerConfig,
        planUnet: (g, input, row) => unet.forward(g, input, { timesteps: row, broadcast: true, classLabels: labelT }),
      },
      opts,
    );
  } finally {
    rt.destroyBuffer(labelT.buffer);
  }
}
