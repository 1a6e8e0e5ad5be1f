"""Writes tests/fixtures/variants/controlnet-* (ControlNetModel cases) and unet-cond-controlnet-*
(UNet2DConditionModel with down_block_additional_residuals / mid_block_additional_residual): diffusers
v0.25.1's own ControlNetModel and UNet2DConditionModel (source tree, hub stubbed as in
check_diffusers.py) in float64 on random float32 weights, every zero conv non-zero.

    PYTHONPATH=/tmp/dfextra /tmp/refenv/bin/python -W ignore make_controlnet_cases.py /tmp/dfsrc/src

(the environment check_diffusers.py describes). io.safetensors holds the inputs (sample, timestep,
encoder_hidden_states, controlnet_cond, conditioning_scale [1] f32, and where the config needs them
class_labels, text_embeds, time_ids) and the outputs: `down_block_res_samples.{i}` and
`mid_block_res_sample` (ControlNetModel.forward), or `out` with the residual inputs
`down_block_additional_residuals.{i}` and `mid_block_additional_residual` (the U-Net cases).
Seeded by case name: a rerun is byte-identical.
"""
import json
import os
import sys
import zlib

import torch

import safetensors_io
from check_diffusers import stub_hub
from make_variants import inputs, random_weights

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '../../tests/fixtures/variants')

# The sd-tiny U-Net's layout (tests/fixtures/sd-tiny/unet): two levels, one layer each, 8 groups.
TINY = {
    'block_out_channels': [32, 64], 'down_block_types': ['CrossAttnDownBlock2D', 'DownBlock2D'], 'layers_per_block': 1,
    'cross_attention_dim': 64, 'attention_head_dim': 8, 'norm_num_groups': 8, 'in_channels': 4,
}

# A smaller two-level layout for the other cases (their files stay small).
SMALL = {**TINY, 'block_out_channels': [16, 32], 'cross_attention_dim': 32, 'attention_head_dim': 4, 'norm_num_groups': 4}

# name: (class, config overrides, inputs)
CASES = {
    # sd-tiny's layout, RGB, a VAE factor of 2, conditioning_scale 1, batch 2.
    'controlnet-tiny': ('ControlNetModel', {**TINY, 'conditioning_embedding_out_channels': [8, 16]},
                        {'sample': [2, 4, 8, 8], 'timestep': [37], 'encoder_hidden_states': [2, 5, 64], 'controlnet_cond': ('rand', [2, 3, 16, 16]), 'conditioning_scale': 0.6}),
    # bgr, UNetMidBlock2D, two layers and three levels, head lists under num_attention_heads, linear
    # projection, per-block transformer layers, scale_shift, mish, odd latents (5x6) under an 8x embedding.
    'controlnet-bgr-mid-resnet': ('ControlNetModel', {
        'block_out_channels': [16, 32, 32], 'down_block_types': ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
        'layers_per_block': 2, 'cross_attention_dim': 24, 'num_attention_heads': [2, 4, 4], 'norm_num_groups': 4,
        'use_linear_projection': True, 'transformer_layers_per_block': [1, 2, 1], 'resnet_time_scale_shift': 'scale_shift',
        'act_fn': 'mish', 'mid_block_type': 'UNetMidBlock2D', 'controlnet_conditioning_channel_order': 'bgr',
        'conditioning_embedding_out_channels': [4, 8, 8, 16], 'downsample_padding': 1, 'mid_block_scale_factor': 1.5,
        'freq_shift': 1, 'flip_sin_to_cos': False,
    }, {'sample': [1, 4, 5, 6], 'timestep': [911], 'encoder_hidden_states': [1, 3, 24], 'controlnet_cond': ('rand', [1, 3, 40, 48]), 'conditioning_scale': 1.0}),
    # SDXL-style: addition_embed_type 'text_time' (text_embeds, time_ids), a 'projection' class
    # embedding, only_cross_attention on the first block, one conditioning channel, 4x embedding.
    'controlnet-text-time': ('ControlNetModel', {
        **SMALL, 'addition_embed_type': 'text_time', 'addition_time_embed_dim': 4, 'projection_class_embeddings_input_dim': 40,
        'class_embed_type': 'projection', 'only_cross_attention': [True, False], 'conditioning_channels': 1,
        'conditioning_embedding_out_channels': [8, 8, 16], 'in_channels': 3,
    }, {'sample': [2, 3, 4, 4], 'timestep': [500], 'encoder_hidden_states': [2, 6, 32], 'controlnet_cond': ('rand', [2, 1, 16, 16]),
        'text_embeds': ('randn', [2, 16]), 'time_ids': ('values', [[16, 16, 0, 0, 16, 16], [32, 24, 2, 4, 16, 16]]),
        'class_labels': ('randn', [2, 40]), 'conditioning_scale': 1.3}),
    # The U-Net side: residuals for all 4 skips and the mid block.
    'unet-cond-controlnet-residuals': ('UNet2DConditionModel', {**SMALL, 'up_block_types': ['UpBlock2D', 'CrossAttnUpBlock2D'], 'sample_size': 8},
                                       {'sample': [2, 4, 8, 8], 'timestep': [421], 'encoder_hidden_states': [2, 5, 32]}),
    # No mid block: the mid residual goes onto the last down output, which is also the last skip (that one gets its own residual).
    'unet-cond-controlnet-no-mid': ('UNet2DConditionModel', {**SMALL, 'up_block_types': ['UpBlock2D', 'CrossAttnUpBlock2D'], 'sample_size': 8, 'mid_block_type': None, 'layers_per_block': 2},
                                    {'sample': [1, 4, 6, 6], 'timestep': [12], 'encoder_hidden_states': [1, 4, 32]}),
}


def main(diffusers_src):
    sys.path[:0] = [stub_hub(), diffusers_src]
    from diffusers.models.controlnet import ControlNetModel
    from diffusers.models.unet_2d_condition import UNet2DConditionModel
    classes = {'ControlNetModel': ControlNetModel, 'UNet2DConditionModel': UNet2DConditionModel}
    for name, (cls_name, overrides, io_spec) in CASES.items():
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        model = classes[cls_name](**overrides)
        weights = random_weights({k: list(v.shape) for k, v in model.state_dict().items()}, gen)
        model.load_state_dict(weights, strict=True)
        model = model.double().eval()
        scale = io_spec.pop('conditioning_scale', None)
        rand = {k: v for k, v in io_spec.items() if isinstance(v, tuple) and v[0] == 'rand'}
        io = inputs({k: v for k, v in io_spec.items() if k not in rand}, gen)
        for k, (_, shape) in rand.items():
            # Control images are in [0, 1].
            io[k] = torch.rand(shape, generator=gen, dtype=torch.float64).float()
        get = lambda k: io[k].double() if io[k].is_floating_point() else io[k]
        kw = {}
        if 'class_labels' in io:
            kw['class_labels'] = get('class_labels')
        if 'text_embeds' in io:
            kw['added_cond_kwargs'] = {'text_embeds': get('text_embeds'), 'time_ids': get('time_ids')}
        outs = {}
        with torch.no_grad():
            if cls_name == 'ControlNetModel':
                io['conditioning_scale'] = torch.tensor([scale], dtype=torch.float32)
                down, mid = model(get('sample'), get('timestep'), get('encoder_hidden_states'), get('controlnet_cond'),
                                  conditioning_scale=scale, return_dict=False, **kw)
                for i, d in enumerate(down):
                    outs[f'down_block_res_samples.{i}'] = d
                outs['mid_block_res_sample'] = mid
            else:
                # The residuals' shapes: a forward pass with hooks would do, but the layout is known.
                B, _, H, W = io['sample'].shape
                ch, layers = overrides['block_out_channels'], overrides['layers_per_block']
                shapes = [(ch[0], H, W)]
                h, w = H, W
                for i, c in enumerate(ch):
                    shapes += [(c, h, w)] * layers
                    if i < len(ch) - 1:
                        h, w = (h + 1) // 2, (w + 1) // 2
                        shapes.append((c, h, w))
                res = [torch.randn((B, *s), generator=gen, dtype=torch.float64).float() for s in shapes]
                mid = torch.randn((B, ch[-1], h, w), generator=gen, dtype=torch.float64).float()
                for i, r in enumerate(res):
                    io[f'down_block_additional_residuals.{i}'] = r
                io['mid_block_additional_residual'] = mid
                outs['out'] = model(get('sample'), get('timestep'), get('encoder_hidden_states'),
                                    down_block_additional_residuals=[r.double() for r in res],
                                    mid_block_additional_residual=mid.double(), return_dict=False, **kw)[0]
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        cfg = {'_class_name': cls_name, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in model.config.items() if not k.startswith('_')}}
        case = {
            'class': cls_name, 'call': 'forward',
            'inputs': {k: list(v.shape) for k, v in io.items()},
            'outputs': {k: list(v.shape) for k, v in outs.items()},
            'note': "made by diffusers v0.25.1's own model code in float64 (scripts/reference/make_controlnet_cases.py) on random float32 weights",
        }
        with open(os.path.join(folder, 'case.json'), 'w') as f:
            json.dump(case, f, indent=1)
        with open(os.path.join(folder, 'config.json'), 'w') as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        safetensors_io.write(os.path.join(folder, 'diffusion_pytorch_model.safetensors'), weights)
        safetensors_io.write(os.path.join(folder, 'io.safetensors'), {**io, **{k: v.float() for k, v in outs.items()}})
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        scale_of = max(v.abs().max().item() for v in outs.values())
        print(f'{name}: {len(outs)} outputs, max|out| {scale_of:.3f}, {size / 1024:.0f} KiB')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else '/tmp/dfsrc/src')
