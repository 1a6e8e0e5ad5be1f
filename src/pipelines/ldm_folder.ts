// A class-conditional latent diffusion folder: unet/, vae/ and scheduler/ in diffusers layout.
import type { Runtime } from '../gpu/runtime.ts';
import { loadModelFolder, readJson } from '../io/model_folder.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { ConfigError } from '../models/loader.ts';
import { UNet2DModel } from '../models/unet_2d.ts';

export interface LdmModel {
  dir: string;
  unet: UNet2DModel;
  vae: AutoencoderKL;
  schedulerConfig: Record<string, unknown>;
  destroy(): void;
}

export async function loadLdmFolder(rt: Runtime, dir: string): Promise<LdmModel> {
  const join = (p: string) => `${dir.replace(/\/$/, '')}/${p}`;
  const unetFolder = await loadModelFolder(join('unet'));
  const cls = unetFolder.config._class_name;
  if (cls !== 'UNet2DModel') throw new ConfigError(`${join('unet/config.json')}: _class_name ${JSON.stringify(cls)} is not supported yet (supported: UNet2DModel)`);
  const unet = new UNet2DModel(rt, unetFolder.weights, unetFolder.config, join('unet'));
  const vaeFolder = await loadModelFolder(join('vae'));
  const vae = new AutoencoderKL(rt, vaeFolder.weights, vaeFolder.config, join('vae'));
  const schedulerConfig = await readJson(join('scheduler/scheduler_config.json'));
  return {
    dir,
    unet,
    vae,
    schedulerConfig,
    destroy() {
      unet.destroy();
      vae.destroy();
    },
  };
}
