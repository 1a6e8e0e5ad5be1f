"""Runs one model case folder (fixture format: case.json, config.json, weights, io.safetensors)
through the float64 reference."""
import json
import os

import safetensors_io
from layers import Weights
from models import taesd_decode, unet_2d, unet_2d_condition, vae_decode, vae_encode_mean, vq_decode

# class.call → (reference function over (W, cfg, io), weight prefixes the call does not use)
CALLS = {
    'UNet2DConditionModel.forward': (lambda W, c, io: unet_2d_condition(W, c, io['sample'], io['timestep'], io['encoder_hidden_states'], io.get('class_labels'), io.get('timestep_cond'),
                                                                      io.get('text_embeds'), io.get('time_ids')), ()),
    'UNet2DModel.forward': (lambda W, c, io: unet_2d(W, c, io['sample'], io['timestep'], io.get('class_labels')), ()),
    'AutoencoderKL.decode': (lambda W, c, io: vae_decode(W, c, io['latents']), ('encoder.', 'quant_conv.')),
    'AutoencoderKL.encode': (lambda W, c, io: vae_encode_mean(W, c, io['image']), ('decoder.', 'post_quant_conv.')),
    'VQModel.decode': (lambda W, c, io: vq_decode(W, c, io['latents']), ('encoder.', 'quant_conv.')),
    'AutoencoderTiny.decode': (lambda W, c, io: taesd_decode(W, c, io['latents']), ('encoder.',)),
}


def load_io(path):
    """io.safetensors with floats as float64 and integer inputs (timestep, class_labels) kept integral."""
    return {k: (v.double() if v.is_floating_point() else v) for k, v in safetensors_io.read(path).items()}


def run(folder, weights=None, io=None):
    """The reference output for a case folder; weights/io may be given in memory (as the generator does)."""
    with open(os.path.join(folder, 'case.json')) as f:
        case = json.load(f)
    with open(os.path.join(folder, 'config.json')) as f:
        cfg = json.load(f)
    fn, unused_prefixes = CALLS[f"{case['class']}.{case['call']}"]
    W = Weights(weights if weights is not None else safetensors_io.read(os.path.join(folder, 'diffusion_pytorch_model.safetensors')))
    io = io if io is not None else load_io(os.path.join(folder, 'io.safetensors'))
    out = fn(W, cfg, io)
    W.assert_all_used(unused_prefixes)
    return out, io
