// A class-conditional latent diffusion folder: unet/, vae/ and scheduler/ in diffusers layout,
// read through a FolderReader (a folder on disk in Node, a URL in a browser).
import type { Runtime } from '../gpu/runtime.ts';
import { nodeFolderReader, openModelFrom, readJsonFrom, subFolder, type FolderReader } from '../io/model_folder.ts';
import { fillStores, type FolderLoadOptions } from './folder_options.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../models/autoencoder_kl_config.ts';
import { buildModel, floatWeights } from '../models/model_loader.ts';
import type { ResolvedPrecision } from '../models/precision.ts';
import { UNet2DModel } from '../models/unet_2d.ts';
import { readUNet2DConfig } from '../models/unet_2d_config.ts';
import { ConfigError, ModelFolderError } from '../errors.ts';

export interface LdmModel {
  dir: string;
  unet: UNet2DModel;
  vae: AutoencoderKL;
  schedulerConfig: Record<string, unknown>;
  /** The storage type both models were built in, and why (the U-Net's; the VAE is built alike). */
  precision: ResolvedPrecision;
  /** GPU bytes the weights take. */
  weightBytes: number;
  destroy(): void;
}

/** Node: a folder on disk. */
export async function loadLdmFolder(rt: Runtime, dir: string, opts: FolderLoadOptions = {}): Promise<LdmModel> {
  const fs = await import('node:fs/promises');
  const stat = await fs.stat(dir).catch(() => null);
  if (!stat?.isDirectory()) throw new ModelFolderError('missing', `${dir}: model folder not found (or not a directory)`);
  return loadLdmFrom(rt, nodeFolderReader(dir), dir, opts);
}

export async function loadLdmFrom(rt: Runtime, root: FolderReader, dir: string, opts: FolderLoadOptions = {}): Promise<LdmModel> {
  const join = (p: string) => `${dir.replace(/\/$/, '')}/${p}`;
  const unetFolder = await openModelFrom(subFolder(root, 'unet'), join('unet'), { variant: opts.variant });
  const cls = unetFolder.config._class_name;
  if (cls !== 'UNet2DModel') throw new ConfigError(`${join('unet/config.json')}: _class_name ${JSON.stringify(cls)} is not supported yet (supported: UNet2DModel)`);
  const unet = buildModel(UNet2DModel, rt, unetFolder.weights, readUNet2DConfig(unetFolder.config, join('unet')), opts);
  let vae: AutoencoderKL | undefined;
  let schedulerConfig: Record<string, unknown>;
  let weightBytes: number;
  try {
    const vaeFolder = await openModelFrom(subFolder(root, 'vae'), join('vae'), { variant: opts.variant });
    vae = buildModel(AutoencoderKL, rt, vaeFolder.weights, readAutoencoderKLConfig(vaeFolder.config, join('vae')), floatWeights(opts));
    schedulerConfig = await readJsonFrom(root, 'scheduler/scheduler_config.json');
    checkLatentChannels(dir, unet, vae);
    weightBytes = await fillStores(rt, [unetFolder.weights, vaeFolder.weights], opts, ['unet', 'vae']);
  } catch (e) {
    vae?.destroy();
    unet.destroy();
    throw e;
  }
  return {
    dir,
    unet,
    vae,
    schedulerConfig,
    precision: unet.precision,
    weightBytes,
    destroy() {
      unet.destroy();
      vae.destroy();
    },
  };
}

/** The U-Net must take the VAE's latents and predict as many channels (no learned variance). */
export function checkLatentChannels(dir: string, unet: { inChannels: number; outChannels: number }, vae: { latentChannels: number }): void {
  if (vae.latentChannels !== unet.inChannels) throw new ConfigError(`${dir}: the VAE has ${vae.latentChannels} latent channels but the U-Net takes ${unet.inChannels}`);
  if (unet.outChannels !== unet.inChannels) throw new ConfigError(`${dir}: the U-Net predicts ${unet.outChannels} channels for ${unet.inChannels} input channels (learned variance is not supported)`);
}
