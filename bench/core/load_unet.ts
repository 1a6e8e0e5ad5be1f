// Loads a U-Net folder alone (config.json + weights) the way loadSdFrom loads a pipeline's unet/:
// the weight file's header is read and the model built (every buffer made) before fillStores
// streams the weights into it. The library's loadModel only takes whole pipelines, and the
// SDXL-shaped load check wants the 5.1 GB U-Net file without the text encoders beside it. Runs in
// Node and in the page.
import type { Runtime } from '../../src/gpu/runtime.ts';
import { openModelFrom, type FolderReader } from '../../src/io/model_folder.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { UNet2DConditionModel } from '../../src/models/unet_2d_condition.ts';
import { readUNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';
import { fillStores, type FolderLoadOptions } from '../../src/pipelines/folder_options.ts';

export async function loadUnetFrom(rt: Runtime, reader: FolderReader, where: string, opts: FolderLoadOptions = {}): Promise<UNet2DConditionModel> {
  const u = await openModelFrom(reader, where, { variant: opts.variant });
  const unet = buildModel(UNet2DConditionModel, rt, u.weights, readUNet2DConditionConfig(u.config, where), opts);
  try {
    await fillStores(rt, [u.weights], opts, ['']);
    await rt.assertHealthy();
  } catch (e) {
    unet.destroy();
    throw e;
  }
  return unet;
}
