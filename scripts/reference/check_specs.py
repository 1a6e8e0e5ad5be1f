"""Checks weight_specs against the real-diffusers fixtures: the same weight names and shapes.

Usage: python check_specs.py [fixtures_dir]
"""
import json
import os
import sys

import safetensors_io
from weight_specs import SPECS

CASES = ['unet2d-cond', 'unet2d-ddpm', 'unet2d-classcond', 'vae-kl-decode', 'vq', 'taesd']


def main(root):
    bad = 0
    for name in CASES:
        with open(os.path.join(root, name, 'config.json')) as f:
            cfg = json.load(f)
        real = {k: tuple(v.shape) for k, v in safetensors_io.read(os.path.join(root, name, 'diffusion_pytorch_model.safetensors')).items()}
        diff = sorted(set(real.items()) ^ set(SPECS[cfg['_class_name']](cfg).items()))
        print(f'{name}: {len(real)} weights, {len(diff)} name/shape differences {diff[:6]}')
        bad += len(diff)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '../../../shared/fixtures')))
