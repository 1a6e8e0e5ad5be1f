"""Writes tests/fixtures/variants/<name>/ in the diffusers fixture format, with outputs from the
float64 reference (not diffusers): random weights from a fixed seed, every parameter non-zero,
scaled so activations stay O(1).

Usage: python make_variants.py [fixtures_dir] [--only name,name]   (fixtures_dir: the real-diffusers
fixtures whose config.json files are the base configs and against which the reference is validated
first; --only: write just those cases, leaving the other folders untouched)
"""
import json
import math
import os
import sys
import zlib

import torch

import check_specs
import safetensors_io
import validate
from run_case import run
from weight_specs import SPECS

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '../../tests/fixtures/variants')

# name → (base fixture whose config.json is overridden, overrides, call, inputs: name → shape or values)
CASES = {
    'unet-cond-headlist': ('unet2d-cond', {
        'block_out_channels': [8, 16, 24], 'norm_num_groups': 8, 'attention_head_dim': [4, 2, 3],
        'use_linear_projection': True, 'cross_attention_dim': 20, 'flip_sin_to_cos': False, 'freq_shift': 1,
        'down_block_types': ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
        'up_block_types': ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    }, 'forward', {'sample': [2, 4, 8, 12], 'timestep': [37, 801], 'encoder_hidden_states': [2, 5, 20]}),
    # Same model, a latent that is not a multiple of 2^(levels-1): diffusers' forward_upsample_size path.
    'unet-cond-odd': ('unet2d-cond', {
        'block_out_channels': [8, 16, 24], 'norm_num_groups': 8, 'attention_head_dim': [4, 2, 3],
        'use_linear_projection': True, 'cross_attention_dim': 20, 'flip_sin_to_cos': False, 'freq_shift': 1,
        'down_block_types': ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
        'up_block_types': ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    }, 'forward', {'sample': [1, 4, 5, 7], 'timestep': [450], 'encoder_hidden_states': [1, 5, 20]}),
    'unet-cond-batch3-77x768': ('unet2d-cond', {
        'block_out_channels': [10, 15], 'norm_num_groups': 5, 'attention_head_dim': [5, 3], 'cross_attention_dim': 768,
    }, 'forward', {'sample': [3, 4, 6, 6], 'timestep': [999, 500, 1], 'encoder_hidden_states': [3, 77, 768]}),
    'unet-cond-transformer-layers': ('unet2d-cond', {
        'block_out_channels': [12, 24], 'norm_num_groups': 4, 'attention_head_dim': 2, 'cross_attention_dim': 16,
        'transformer_layers_per_block': 2, 'upcast_attention': True, 'mid_block_scale_factor': 1.5,
    }, 'forward', {'sample': [2, 4, 6, 10], 'timestep': [10, 700], 'encoder_hidden_states': [2, 9, 16]}),
    # Odd conv_in/conv_out kernels, asymmetric downsample padding, one timestep broadcast over the batch.
    'unet-cond-kernels': ('unet2d-cond', {
        'block_out_channels': [8, 16], 'norm_num_groups': 4, 'attention_head_dim': [2, 4], 'cross_attention_dim': 12,
        'conv_in_kernel': 5, 'conv_out_kernel': 1, 'downsample_padding': 0, 'layers_per_block': 2,
    }, 'forward', {'sample': [2, 4, 8, 6], 'timestep': [250], 'encoder_hidden_states': [2, 3, 12]}),
    'unet2d-odd': ('unet2d-classcond', {
        'block_out_channels': [8, 16, 24], 'norm_num_groups': 8, 'attention_head_dim': 4, 'num_class_embeds': 7,
        'downsample_padding': 0, 'flip_sin_to_cos': False, 'freq_shift': 1, 'in_channels': 3, 'out_channels': 3,
        'down_block_types': ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'],
        'up_block_types': ['AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
    }, 'forward', {'sample': [3, 3, 12, 20], 'timestep': [3, 333, 998], 'class_labels': [6, 0, 3]}),
    # Per-block layers_per_block and transformer_layers_per_block: down block i uses entry i, the mid
    # block the last transformer entry, up block i the reversed lists (layers + 1 resnets).
    'unet-cond-layer-lists': ('unet2d-cond', {
        'block_out_channels': [8, 12, 16], 'norm_num_groups': 4, 'attention_head_dim': [2, 3, 4], 'cross_attention_dim': 12,
        'layers_per_block': [3, 1, 2], 'transformer_layers_per_block': [3, 1, 2],
        'down_block_types': ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
        'up_block_types': ['CrossAttnUpBlock2D', 'UpBlock2D', 'CrossAttnUpBlock2D'],
    }, 'forward', {'sample': [2, 4, 8, 8], 'timestep': [61, 912], 'encoder_hidden_states': [2, 5, 12]}),
    # center_input_sample: sample = 2·sample − 1 before conv_in.
    'unet-cond-center': ('unet2d-cond', {
        'block_out_channels': [8, 16], 'norm_num_groups': 4, 'attention_head_dim': 2, 'cross_attention_dim': 12,
        'center_input_sample': True,
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [140, 620], 'encoder_hidden_states': [2, 4, 12]}),
    'unet2d-center': ('unet2d-classcond', {
        'block_out_channels': [8, 16], 'norm_num_groups': 4, 'attention_head_dim': 4, 'num_class_embeds': None, 'in_channels': 3, 'out_channels': 3,
        'center_input_sample': True, 'down_block_types': ['DownBlock2D', 'AttnDownBlock2D'], 'up_block_types': ['AttnUpBlock2D', 'UpBlock2D'],
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': [5, 777]}),
    # Class conditioning of UNet2DConditionModel: nn.Embedding (class_embed_type null), the labels
    # through the timestep projection and a TimestepEmbedding ('timestep'), the labels as embeddings ('identity').
    'unet-cond-class-embed': ('unet2d-cond', {
        'block_out_channels': [8, 16], 'norm_num_groups': 4, 'attention_head_dim': 2, 'cross_attention_dim': 12,
        'num_class_embeds': 6,
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [300, 20], 'encoder_hidden_states': [2, 4, 12], 'class_labels': [5, 2]}),
    'unet-cond-class-timestep': ('unet2d-cond', {
        'block_out_channels': [8, 16], 'norm_num_groups': 4, 'attention_head_dim': 2, 'cross_attention_dim': 12,
        'class_embed_type': 'timestep', 'flip_sin_to_cos': False, 'freq_shift': 1,
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [300, 20], 'encoder_hidden_states': [2, 4, 12], 'class_labels': [250, 7]}),
    'unet-cond-class-identity': ('unet2d-cond', {
        'block_out_channels': [8, 16], 'norm_num_groups': 4, 'attention_head_dim': 2, 'cross_attention_dim': 12,
        'class_embed_type': 'identity',
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [300, 20], 'encoder_hidden_states': [2, 4, 12], 'class_labels': ('randn', [2, 32])}),
    # UNet2DModel's 'timestep' and 'identity' class embeddings (the same code as UNet2DConditionModel's).
    'unet2d-class-timestep': ('unet2d-classcond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 4, 'num_class_embeds': None, 'in_channels': 3, 'out_channels': 3,
        'class_embed_type': 'timestep', 'flip_sin_to_cos': False, 'freq_shift': 1,
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': [5, 777], 'class_labels': [300, 12]}),
    'unet2d-class-identity': ('unet2d-classcond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 4, 'num_class_embeds': None, 'in_channels': 3, 'out_channels': 3,
        'class_embed_type': 'identity',
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': [41, 650], 'class_labels': ('randn', [2, 16])}),
    # mid_block_type 'UNetMidBlock2D' (UNet2DConditionModel builds it with num_layers 0 and no
    # attention: one resnet, scaled by mid_block_scale_factor) and null (no mid block).
    'unet-cond-mid-resnet': ('unet2d-cond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 2, 'cross_attention_dim': 6,
        'mid_block_type': 'UNetMidBlock2D', 'mid_block_scale_factor': 1.5,
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [90, 810], 'encoder_hidden_states': [2, 3, 6]}),
    'unet-cond-no-mid': ('unet2d-cond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 2, 'cross_attention_dim': 6,
        'mid_block_type': None,
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [90, 810], 'encoder_hidden_states': [2, 3, 6]}),
    # only_cross_attention per block: attn1 of block 0 (and of the last up block) attends to the
    # text states; mid_block_only_cross_attention does not reach UNetMidBlock2DCrossAttn.
    'unet-cond-only-cross': ('unet2d-cond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 2, 'cross_attention_dim': 6,
        'only_cross_attention': [True, False], 'mid_block_only_cross_attention': True,
        'down_block_types': ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'], 'up_block_types': ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [90, 810], 'encoder_hidden_states': [2, 3, 6]}),
    # time_cond_proj_dim (LCM-distilled U-Nets): timestep_cond through cond_proj into linear_1.
    'unet-cond-lcm': ('unet2d-cond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 2, 'cross_attention_dim': 6,
        'time_cond_proj_dim': 5,
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [499, 259], 'encoder_hidden_states': [2, 3, 6], 'timestep_cond': [2, 5]}),
    # The time embedding's own options: time_embedding_dim (a width other than 4·block_out_channels[0]),
    # timestep_post_act (after linear_2, before the class embedding is added), time_embedding_act_fn
    # (once on emb + class_emb), float class vectors through a TimestepEmbedding ('projection', SiLU
    # whatever act_fn is) or one Linear ('simple_projection'). resnet_out_scale_factor and
    # resnet_skip_time_act do not reach these block types in v0.25.1 (no effect; diffusers agrees).
    'unet-cond-time-proj': ('unet2d-cond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 2, 'cross_attention_dim': 6,
        'time_embedding_dim': 20, 'timestep_post_act': 'gelu', 'time_embedding_act_fn': 'mish', 'act_fn': 'relu',
        'class_embed_type': 'projection', 'projection_class_embeddings_input_dim': 7,
        'resnet_out_scale_factor': 2.0, 'resnet_skip_time_act': True,
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [333, 71], 'encoder_hidden_states': [2, 3, 6], 'class_labels': ('randn', [2, 7])}),
    'unet-cond-time-simple-proj': ('unet2d-cond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 2, 'cross_attention_dim': 6,
        'time_embedding_dim': 12, 'time_embedding_act_fn': 'silu',
        'class_embed_type': 'simple_projection', 'projection_class_embeddings_input_dim': 5,
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [640, 5], 'encoder_hidden_states': [2, 3, 6], 'class_labels': ('randn', [2, 5])}),
    # addition_embed_type 'text_time' (Stable Diffusion XL): SDXL base's layout at toy size (Down, CrossAttn,
    # CrossAttn levels, per-level head counts and transformer layers, linear projection), text_embeds [B, 12]
    # and six time ids per sample (original size, crop top-left, target size) at SDXL's magnitudes, each
    # through add_time_proj (8 wide): projection_class_embeddings_input_dim = 12 + 6·8.
    'unet-cond-sdxl': ('unet2d-cond', {
        'block_out_channels': [8, 16, 24], 'norm_num_groups': 4, 'attention_head_dim': [2, 4, 6], 'cross_attention_dim': 20,
        'use_linear_projection': True, 'transformer_layers_per_block': [1, 1, 2], 'layers_per_block': 2,
        'down_block_types': ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
        'up_block_types': ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
        'addition_embed_type': 'text_time', 'addition_time_embed_dim': 8, 'projection_class_embeddings_input_dim': 60,
    }, 'forward', {'sample': [2, 4, 8, 8], 'timestep': [999, 15], 'encoder_hidden_states': [2, 5, 20], 'text_embeds': [2, 12],
                   'time_ids': ('values', [[1024, 1024, 0, 0, 1024, 1024], [768, 1344, 16, 32, 1024, 1024]])}),
    # 'text_time' beside a 'timestep' class embedding and time_embedding_act_fn (emb + class_emb + aug_emb, then
    # the activation), act_fn gelu (add_embedding keeps its default SiLU), flip_sin_to_cos False and freq_shift 1
    # (add_time_proj takes them too), an odd addition_time_embed_dim (zero-padded sinusoid) and five time ids
    # (the SDXL refiner's: original size, crop top-left, aesthetic score): 10 + 5·7.
    'unet-cond-sdxl-class': ('unet2d-cond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 2, 'cross_attention_dim': 6,
        'act_fn': 'gelu', 'class_embed_type': 'timestep', 'time_embedding_act_fn': 'mish', 'flip_sin_to_cos': False, 'freq_shift': 1,
        'addition_embed_type': 'text_time', 'addition_time_embed_dim': 7, 'projection_class_embeddings_input_dim': 45,
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [420, 77], 'encoder_hidden_states': [2, 3, 6], 'class_labels': [12, 700],
                   'text_embeds': [2, 10], 'time_ids': ('values', [[1024, 768, 0, 0, 6.0], [512, 640, 8, 16, 2.5]])}),
    # cross_attention_dim as a per-block list: down block i takes entry i, the mid block the last entry, up block i
    # the reversed list's entry i. One encoder_hidden_states feeds every cross-attention block, so the list can only
    # differ where a block has none: here the DownBlock2D / UpBlock2D level and the UNetMidBlock2D mid block.
    'unet-cond-cross-dim-list': ('unet2d-cond', {
        'block_out_channels': [4, 8, 12], 'norm_num_groups': 2, 'attention_head_dim': [2, 2, 3], 'cross_attention_dim': [10, 10, 16],
        'mid_block_type': 'UNetMidBlock2D',
        'down_block_types': ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
        'up_block_types': ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    }, 'forward', {'sample': [2, 4, 8, 8], 'timestep': [33, 666], 'encoder_hidden_states': [2, 4, 10]}),
    # UNet2DModel's downsample_type / upsample_type 'resnet': AttnDownBlock2D / AttnUpBlock2D resample with a
    # ResnetBlock2D (down / up = True: 2x2 average pool / nearest 2x of the hidden states and the shortcut);
    # v0.25.1's DownBlock2D and UpBlock2D ignore the options and keep their conv resamplers (down block 0, up block 1).
    'unet2d-resnet-updown': ('unet2d-classcond', {
        'block_out_channels': [8, 16, 24], 'norm_num_groups': 4, 'attention_head_dim': 4, 'num_class_embeds': None, 'in_channels': 3, 'out_channels': 3,
        'downsample_type': 'resnet', 'upsample_type': 'resnet',
        'down_block_types': ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'], 'up_block_types': ['AttnUpBlock2D', 'UpBlock2D', 'AttnUpBlock2D'],
    }, 'forward', {'sample': [2, 3, 8, 12], 'timestep': [41, 860]}),
    # ResnetDownsampleBlock2D / ResnetUpsampleBlock2D (always a resnet resampler) beside conv-resampling attention
    # blocks, two layers each, and one 'UNetRes'-prefixed name (get_down_block strips it).
    'unet2d-resnet-blocks': ('unet2d-classcond', {
        'block_out_channels': [8, 12, 16], 'norm_num_groups': 4, 'attention_head_dim': 4, 'num_class_embeds': None, 'in_channels': 3, 'out_channels': 3,
        'layers_per_block': 2,
        'down_block_types': ['ResnetDownsampleBlock2D', 'UNetResAttnDownBlock2D', 'ResnetDownsampleBlock2D'],
        'up_block_types': ['ResnetUpsampleBlock2D', 'AttnUpBlock2D', 'ResnetUpsampleBlock2D'],
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': [7, 512]}),
    # time_embedding_type 'fourier' (NCSN++'s): GaussianFourierProjection(8, scale 16) of ln t at sigma-like
    # float timesteps ([sin | cos]: flip_sin_to_cos is not passed to it), linear_1 from 16, and the output
    # divided by the timesteps. 'unet2d-fourier-class' adds a 'timestep' class embedding, which takes the
    # labels through the same projection.
    'unet2d-fourier': ('unet2d-classcond', {
        'block_out_channels': [8, 16], 'norm_num_groups': 4, 'attention_head_dim': 4, 'num_class_embeds': None, 'in_channels': 3, 'out_channels': 3,
        'time_embedding_type': 'fourier', 'flip_sin_to_cos': True,
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': ('values', [0.37, 348.5])}),
    'unet2d-fourier-class': ('unet2d-classcond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 4, 'num_class_embeds': None, 'in_channels': 3, 'out_channels': 3,
        'time_embedding_type': 'fourier', 'class_embed_type': 'timestep',
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': ('values', [12.25, 1.5]), 'class_labels': ('values', [3.0, 0.75])}),
    # time_embedding_type 'learned': nn.Embedding(num_train_timesteps, 8) over the (integer) timesteps, and a
    # 'timestep' class embedding looking its labels up in the same table.
    'unet2d-learned-time': ('unet2d-classcond', {
        'block_out_channels': [8, 16], 'norm_num_groups': 4, 'attention_head_dim': 4, 'num_class_embeds': None, 'in_channels': 3, 'out_channels': 3,
        'time_embedding_type': 'learned', 'num_train_timesteps': 50, 'class_embed_type': 'timestep',
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': [3, 49], 'class_labels': [17, 0]}),
    # NCSN++'s skip blocks (score-SDE models, google/ncsnpp-*): the layout of diffusers' NCSNppModelTests at
    # toy size (time_embedding_type 'fourier' at sigma-like timesteps, norm_num_groups null: the mid block and
    # conv_norm_out take min(C // 4, 32) groups, attention_head_dim null, norm_eps 1e-6, mid_block_scale_factor
    # √2). AttnSkipDownBlock2D downsamples (resnet_down with a FIR down, the skip sample FIR-downsampled into
    # skip_conv); SkipUpBlock2D builds the image-space skip (skip_norm, skip_conv, resnet_up with a FIR up),
    # AttnSkipUpBlock2D FIR-upsamples it and has one attention; the skip is added before the fourier division.
    # 32 channels: the skip attentions' norm has 32 groups, and AttnSkipUpBlock2D's min(in + skip // 4, 32)
    # (32, where the intended (in + skip) // 4 is 16) must divide 64.
    'unet2d-ncsnpp': ('unet2d-classcond', {
        'block_out_channels': [32, 32], 'norm_num_groups': None, 'attention_head_dim': None, 'num_class_embeds': None,
        'in_channels': 3, 'out_channels': 3, 'layers_per_block': 1, 'norm_eps': 1e-6, 'mid_block_scale_factor': math.sqrt(2.0),
        'time_embedding_type': 'fourier',
        'down_block_types': ['AttnSkipDownBlock2D', 'SkipDownBlock2D'], 'up_block_types': ['SkipUpBlock2D', 'AttnSkipUpBlock2D'],
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': ('values', [0.6, 1.7])}),
    # Three levels of skip blocks (the second up block FIR-upsamples the first one's skip and adds its own
    # skip_conv to it), a final DownBlock2D (no downsample: the skip sample passes it unused), positional time,
    # center_input_sample (the skip path starts from the centered sample), resnet_time_scale_shift
    # 'scale_shift' (every resnet, FIR ones too; no group norm in the mid attention), act_fn mish in the
    # resnets (the skip path's activation stays SiLU), norm_num_groups 4 for the DownBlock2D and the mid block.
    'unet2d-ncsnpp-mixed': ('unet2d-classcond', {
        'block_out_channels': [8, 16, 12], 'norm_num_groups': 4, 'attention_head_dim': 4, 'num_class_embeds': None,
        'in_channels': 3, 'out_channels': 3, 'layers_per_block': 1, 'center_input_sample': True,
        'resnet_time_scale_shift': 'scale_shift', 'act_fn': 'mish',
        'down_block_types': ['SkipDownBlock2D', 'SkipDownBlock2D', 'DownBlock2D'], 'up_block_types': ['SkipUpBlock2D', 'SkipUpBlock2D', 'SkipUpBlock2D'],
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': [12, 730]}),
    'vae-decode-odd': ('vae-kl-decode', {
        'block_out_channels': [8, 16, 24], 'norm_num_groups': 8, 'latent_channels': 3,
        'down_block_types': ['DownEncoderBlock2D'] * 3, 'up_block_types': ['UpDecoderBlock2D'] * 3,
    }, 'decode', {'latents': [1, 3, 5, 7]}),
    'vae-encode-odd': ('vae-kl-encode', {
        'block_out_channels': [8, 16, 24], 'norm_num_groups': 8, 'latent_channels': 3, 'layers_per_block': 2,
        'down_block_types': ['DownEncoderBlock2D'] * 3, 'up_block_types': ['UpDecoderBlock2D'] * 3,
    }, 'encode', {'image': [2, 3, 13, 15]}),
    # VQModel norm_type 'spatial' (MoVQ): every decoder norm a SpatialNorm over the quantized latents,
    # nearest-interpolated to each level's size (odd latents: 5x7 → 10x14; 3x5 → 6x10 → 12x20).
    'vq-spatial-odd': ('vq', {
        'block_out_channels': [32, 64], 'latent_channels': 4, 'norm_type': 'spatial', 'num_vq_embeddings': 16,
    }, 'decode', {'latents': [1, 4, 5, 7]}),
    'vq-spatial-3lvl': ('vq', {
        'block_out_channels': [32, 32, 32], 'latent_channels': 3, 'layers_per_block': 2, 'norm_type': 'spatial',
        'num_vq_embeddings': 24, 'down_block_types': ['DownEncoderBlock2D'] * 3, 'up_block_types': ['UpDecoderBlock2D'] * 3,
    }, 'decode', {'latents': [2, 3, 3, 5]}),
    # AttnDownEncoderBlock2D / AttnUpDecoderBlock2D (VAE blocks with an attention after each resnet: one head,
    # as the Encoder / Decoder pass attention_head_dim = the block's channels; group norm of norm_num_groups,
    # eps 1e-6, residual), mixed with the plain blocks. The encode case's odd size reaches the attentions as
    # 7x8 and 4x4; the decode case has attentions at the latent size and at 4x it (20x28, 560 tokens).
    'vae-encode-attn': ('vae-kl-encode', {
        'block_out_channels': [8, 16, 32], 'norm_num_groups': 4, 'latent_channels': 3, 'layers_per_block': 2,
        'down_block_types': ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D', 'AttnDownEncoderBlock2D'], 'up_block_types': ['UpDecoderBlock2D'] * 3,
    }, 'encode', {'image': [2, 3, 13, 15]}),
    'vae-decode-attn': ('vae-kl-decode', {
        'block_out_channels': [8, 16, 32], 'norm_num_groups': 4, 'latent_channels': 3,
        'down_block_types': ['AttnDownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
        'up_block_types': ['AttnUpDecoderBlock2D', 'UpDecoderBlock2D', 'AttnUpDecoderBlock2D'],
    }, 'decode', {'latents': [2, 3, 5, 7]}),
    # VQModel norm_type 'spatial' with AttnUpDecoderBlock2D (Kandinsky 2.2's movq layout: attention in the first
    # up block and the last down block): the attentions have no group norm but a SpatialNorm over the quantized
    # latents (spatial_norm_dim = latent_channels), nearest-interpolated to 5x7 (the same size) and 20x28; the
    # residual is the attention's input before that norm.
    'vq-spatial-attn': ('vq', {
        'block_out_channels': [32, 32, 64], 'latent_channels': 4, 'norm_type': 'spatial', 'num_vq_embeddings': 16,
        'down_block_types': ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'AttnDownEncoderBlock2D'],
        'up_block_types': ['AttnUpDecoderBlock2D', 'UpDecoderBlock2D', 'AttnUpDecoderBlock2D'],
    }, 'decode', {'latents': [2, 4, 5, 7]}),
    # act_fn other than SiLU, one case per model family. UNet2DModel: the resnets only (its
    # TimestepEmbedding and conv_act stay SiLU); UNet2DConditionModel: the resnets, both
    # TimestepEmbeddings (time and 'timestep' class) and conv_act; AutoencoderKL: the resnets
    # (conv_act stays SiLU); AutoencoderTiny: inside every block and after conv_in (the fuse stays ReLU).
    'unet2d-act-mish': ('unet2d-classcond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 4, 'num_class_embeds': None, 'in_channels': 3, 'out_channels': 3,
        'act_fn': 'mish',
    }, 'forward', {'sample': [2, 3, 8, 8], 'timestep': [17, 903]}),
    'unet-cond-act-gelu': ('unet2d-cond', {
        'block_out_channels': [4, 8], 'norm_num_groups': 2, 'attention_head_dim': 2, 'cross_attention_dim': 6,
        'act_fn': 'gelu', 'class_embed_type': 'timestep',
    }, 'forward', {'sample': [2, 4, 6, 6], 'timestep': [120, 640], 'encoder_hidden_states': [2, 3, 6], 'class_labels': [33, 480]}),
    'vae-decode-act-mish': ('vae-kl-decode', {
        'block_out_channels': [8, 16], 'norm_num_groups': 4, 'latent_channels': 3, 'act_fn': 'mish',
        'down_block_types': ['DownEncoderBlock2D'] * 2, 'up_block_types': ['UpDecoderBlock2D'] * 2,
    }, 'decode', {'latents': [1, 3, 5, 6]}),
    'taesd-act-silu': ('taesd', {
        'block_out_channels': [8, 8, 8], 'encoder_block_out_channels': [8, 8, 8], 'decoder_block_out_channels': [8, 8, 8],
        'num_encoder_blocks': [1, 1, 1], 'num_decoder_blocks': [1, 2, 1], 'act_fn': 'silu',
    }, 'decode', {'latents': [2, 4, 5, 6]}),
}


def random_weights(spec, gen):
    """Kaiming-like scale for matrices, small offsets around 1 for norm scales, small biases, all non-zero."""
    w = {}
    for name, shape in sorted(spec.items()):
        r = torch.randn(shape, generator=gen, dtype=torch.float64)
        if len(shape) > 1:
            t = r / math.sqrt(math.prod(shape[1:]))
            if name.endswith('class_embedding.weight') or name == 'time_proj.weight':
                t = r * 0.5
        elif name in ('time_proj.weight', 'time_proj.W'):
            # GaussianFourierProjection's own init: randn · scale 16.
            t = 16 * r
        elif 'norm' in name and name.endswith('.weight'):
            t = 1 + 0.1 * r
        else:
            t = 0.1 * r
        w[name] = torch.where(t == 0, torch.full_like(t, 1e-3), t).float()
    if 'time_proj.W' in w:
        # One parameter under two names in diffusers: the same values.
        w['time_proj.W'] = w['time_proj.weight'].clone()
    return w


def inputs(spec, gen):
    """name → shape (standard normal), or integer values (timestep, class_labels), or ('randn', shape)
    for float class labels (class_embed_type 'identity'), or ('values', nested list) for given float
    values (e.g. time_ids)."""
    io = {}
    for k, v in spec.items():
        if isinstance(v, tuple) and v[0] == 'randn':
            io[k] = torch.randn(v[1], generator=gen, dtype=torch.float64).float()
        elif isinstance(v, tuple) and v[0] == 'values':
            io[k] = torch.tensor(v[1], dtype=torch.float64).float()
        elif k in ('timestep', 'class_labels'):
            io[k] = torch.tensor(v, dtype=torch.int64)
        else:
            io[k] = torch.randn(v, generator=gen, dtype=torch.float64).float()
    return io


def main():
    args = sys.argv[1:]
    only = None
    if '--only' in args:
        k = args.index('--only')
        only = set(args[k + 1].split(','))
        del args[k:k + 2]
        if only - set(CASES):
            sys.exit(f'unknown cases: {sorted(only - set(CASES))}')
    fixtures = args[0] if args else os.path.join(HERE, '../../../shared/fixtures')
    sys.argv = [sys.argv[0], fixtures]
    if validate.main() != 0:
        sys.exit('the reference does not match the diffusers fixtures; not generating anything')
    if check_specs.main(fixtures) != 0:
        sys.exit('weight_specs does not give the diffusers weight names/shapes; not generating anything')
    agreement = validate.LAST_WORST
    for name, (base, overrides, call, io_spec) in CASES.items():
        if only is not None and name not in only:
            continue
        # Seeded by name, so adding a case leaves the others byte-identical.
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        with open(os.path.join(fixtures, base, 'config.json')) as f:
            cfg = {**json.load(f), **overrides}
        cfg.pop('_diffusers_version', None)
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        weights = random_weights(SPECS[cfg['_class_name']](cfg), gen)
        if cfg['_class_name'] == 'VQModel' and call == 'decode':
            # The encoder is never run by a decode case: leave its weights out of the (large) file.
            weights = {k: v for k, v in weights.items() if not k.startswith(('encoder.', 'quant_conv.'))}
        io = inputs(io_spec, gen)
        case = {
            'class': cfg['_class_name'], 'call': call,
            'inputs': {k: list(v.shape) for k, v in io.items()},
            'note': ('made by scripts/reference (float64 torch re-implementation of diffusers v0.25.1), not by diffusers; '
                     f'that reference reproduces the real-diffusers fixtures to max|err|/max|out| <= {agreement:.1e}'),
        }
        with open(os.path.join(folder, 'case.json'), 'w') as f:
            json.dump(case, f, indent=1)
        with open(os.path.join(folder, 'config.json'), 'w') as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        out, _ = run(folder, weights=weights, io={k: (v.double() if v.is_floating_point() else v) for k, v in io.items()})
        case['out'] = list(out.shape)
        with open(os.path.join(folder, 'case.json'), 'w') as f:
            json.dump(case, f, indent=1)
        safetensors_io.write(os.path.join(folder, 'diffusion_pytorch_model.safetensors'), weights)
        safetensors_io.write(os.path.join(folder, 'io.safetensors'), {**io, 'out': out.float()})
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        print(f'{name}: out {list(out.shape)} max|out| {out.abs().max().item():.2f} std {out.std().item():.2f}, {size / 1024:.0f} KiB')


if __name__ == '__main__':
    main()
