// Textual inversion embeddings as diffusers' load_textual_inversion reads them from .safetensors:
// one tensor under the token's own name ({token: [dim] or [n, dim]}), A1111's `emb_params` [n, dim]
// (the token then comes from the caller or the file's name), or SDXL's pair `clip_l` / `clip_g`
// (one per text encoder); the same forms in torch.save files (.bin/.pt, read as data). GPU-free.
import { parseSafetensors, readFileBytes, toFloat32, type HostTensor } from './safetensors.ts';
import { detectTorchFormat, readTorchFileAsync, torchTensors, torchToHostTensor } from './torch_file.ts';
import { TokenizerError } from '../errors.ts';

/** The embedding forms readInversion takes, for documentation (the support table). */
export const INVERSION_FORMS = ['{token: vectors}', "A1111's `emb_params`", "SDXL's `clip_l` + `clip_g`"] as const;

export interface InversionVectors {
  /** Rows [n, dim], flattened. */
  values: Float32Array;
  n: number;
  dim: number;
}

export interface Inversion {
  /** The token from the file (its one key), or null when the file does not name one. */
  token: string | null;
  /** Vectors for text_encoder, and for text_encoder_2 (SDXL's clip_g) where the file has them. */
  text_encoder: InversionVectors;
  text_encoder_2?: InversionVectors;
}

function vectors(t: HostTensor, where: string): InversionVectors {
  if (t.shape.length === 1) return { values: toFloat32(t), n: 1, dim: t.shape[0]! };
  if (t.shape.length === 2 && t.shape[0]! >= 1) return { values: toFloat32(t), n: t.shape[0]!, dim: t.shape[1]! };
  throw new TokenizerError(`${where}: embedding '${t.name}' has shape [${t.shape.join(', ')}]; expected [dim] or [vectors, dim]`);
}

export function readInversion(tensors: Map<string, HostTensor>, where: string): Inversion {
  const keys = [...tensors.keys()];
  if (tensors.has('clip_l') && tensors.has('clip_g')) {
    return { token: null, text_encoder: vectors(tensors.get('clip_l')!, where), text_encoder_2: vectors(tensors.get('clip_g')!, where) };
  }
  if (tensors.has('emb_params')) return { token: null, text_encoder: vectors(tensors.get('emb_params')!, where) };
  // A bare tensor (torch.save(tensor)) has no name: the token must come from the caller.
  if (keys.length === 1) return { token: keys[0] || null, text_encoder: vectors(tensors.get(keys[0]!)!, where) };
  throw new TokenizerError(`${where}: not a textual inversion embedding: expected one tensor named by its token, 'emb_params', or SDXL's 'clip_l' and 'clip_g'; found ${keys.slice(0, 5).join(', ')}${keys.length > 5 ? ', …' : ''}`);
}

/**
 * An embedding file's bytes: .safetensors, or a torch.save file (read as data, nothing run:
 * torch_file.ts) in diffusers' {token: vector} form or A1111's {'string_to_param': {'*': ...},
 * 'name': token}.
 */
export async function readInversionBytes(bytes: Uint8Array, where: string): Promise<Inversion> {
  const format = detectTorchFormat(bytes);
  if (format === 'safetensors' || format === 'unknown') return readInversion(parseSafetensors(bytes, where), where);
  const value = await readTorchFileAsync(bytes, where);
  const tensors = torchTensors(value);
  const top = value instanceof Map ? value : null;
  // A1111's dict, or the original textual inversion's nn.ParameterDict inside it.
  const a1111 = tensors.get('string_to_param.*') ?? tensors.get('string_to_param._parameters.*');
  if (a1111) {
    const name = top?.get('name');
    return { ...readInversion(new Map([['emb_params', torchToHostTensor(a1111, 'emb_params')]]), where), token: typeof name === 'string' ? name : null };
  }
  return readInversion(new Map([...tensors].map(([k, t]) => [k, torchToHostTensor(t, k)])), where);
}

/** Node: an embedding file on disk. */
export async function readInversionFile(path: string): Promise<Inversion> {
  const bytes = await readFileBytes(path);
  if (!bytes) throw new TokenizerError(`${path}: file not found`);
  return readInversionBytes(bytes, path);
}
