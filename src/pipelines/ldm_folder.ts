// A class-conditional latent diffusion folder: unet/, vae/ and scheduler/ in diffusers layout.
import type { Runtime } from '../gpu/runtime.ts';
import { loadModelFolder, readJson } from '../io/model_folder.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { ConfigError } from '../models/loader.ts';
import type { ModelOptions, ResolvedPrecision } from '../models/precision.ts';
import { UNet2DModel } from '../models/unet_2d.ts';

export interface LdmModel {
  dir: string;
  unet: UNet2DModel;
  vae: AutoencoderKL;
  schedulerConfig: Record<string, unknown>;
  /** The storage type both models were built in, and why (the U-Net's; the VAE is built alike). */
  precision: ResolvedPrecision;
  destroy(): void;
}

export async function loadLdmFolder(rt: Runtime, dir: string, opts: ModelOptions = {}): Promise<LdmModel> {
  const join = (p: string) => `${dir.replace(/\/$/, '')}/${p}`;
  const unetFolder = await loadModelFolder(join('unet'));
  const cls = unetFolder.config._class_name;
  if (cls !== 'UNet2DModel') throw new ConfigError(`${join('unet/config.json')}: _class_name ${JSON.stringify(cls)} is not supported yet (supported: UNet2DModel)`);
  const unet = new UNet2DModel(rt, unetFolder.weights, unetFolder.config, join('unet'), opts);
  let vae: AutoencoderKL;
  let schedulerConfig: Record<string, unknown>;
  try {
    const vaeFolder = await loadModelFolder(join('vae'));
    vae = new AutoencoderKL(rt, vaeFolder.weights, vaeFolder.config, join('vae'), opts);
    schedulerConfig = await readJson(join('scheduler/scheduler_config.json'));
    if (vae.latentChannels !== unet.inChannels) {
      vae.destroy();
      throw new ConfigError(`${dir}: the VAE has ${vae.latentChannels} latent channels but the U-Net takes ${unet.inChannels}`);
    }
    if (unet.outChannels !== unet.inChannels) {
      vae.destroy();
      throw new ConfigError(`${dir}: the U-Net predicts ${unet.outChannels} channels for ${unet.inChannels} input channels (learned variance is not supported)`);
    }
  } catch (e) {
    unet.destroy();
    throw e;
  }
  return {
    dir,
    unet,
    vae,
    schedulerConfig,
    precision: unet.precision,
    destroy() {
      unet.destroy();
      vae.destroy();
    },
  };
}
