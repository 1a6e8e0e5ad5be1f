"""The building blocks of diffusers v0.25.1's U-Nets and VAEs as float64 functions of a weight dict.

Each function takes `W` (all weights, by diffusers key) and the key prefix of its module, so the
wiring reads like the diffusers module tree. Dropout is the identity (eval mode).
"""
import math

import torch
import torch.nn.functional as F


def linear(W, p, x, bias=True):
    return F.linear(x, W[p + '.weight'], W[p + '.bias'] if bias else None)


def conv(W, p, x, stride=1, padding=None):
    w = W[p + '.weight']
    if padding is None:
        padding = w.shape[-1] // 2
    return F.conv2d(x, w, W.get(p + '.bias'), stride=stride, padding=padding)


# activations.get_activation: act_fn names (case-insensitive) → torch's activation; 'gelu' is nn.GELU()
# (the exact erf form).
ACTIVATIONS = {'swish': F.silu, 'silu': F.silu, 'mish': F.mish, 'gelu': F.gelu, 'relu': F.relu}


def get_activation(name):
    if name.lower() not in ACTIVATIONS:
        raise ValueError(f'Unsupported activation function: {name}')
    return ACTIVATIONS[name.lower()]


def group_norm(W, p, x, groups, eps):
    return F.group_norm(x, groups, W[p + '.weight'], W[p + '.bias'], eps)


def layer_norm(W, p, x, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], W[p + '.weight'], W[p + '.bias'], eps)


def timestep_embedding(t, dim, flip_sin_to_cos, freq_shift, max_period=10000):
    """embeddings.get_timestep_embedding. diffusers builds the sinusoid arguments in float32 (the
    exponent and t·freq products), so this does too: at t≈1000 float32 rounding of the argument moves
    sin/cos by ~1e-4, far more than the 1e-5 this reference must reproduce."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - freq_shift)
    args = t.to(torch.float32)[:, None] * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(args.double()), torch.cos(args.double())], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


def gaussian_fourier(W, p, t):
    """embeddings.GaussianFourierProjection as UNet2DModel builds it (log=True, flip_sin_to_cos=False),
    with a float32 model's roundings: ln t, ln t·w, ·2, ·float32(π) in float32 (the arguments reach
    ~1000 rad, where those roundings move sin/cos by ~1e-4); sin/cos in float64. diffusers registers
    the weight as both W and weight (one parameter): both are read, weight is used."""
    w = W[p + '.weight'].float()
    W.get(p + '.W')
    args = torch.log(t.to(torch.float32))[:, None] * w[None, :] * 2 * math.pi
    return torch.cat([torch.sin(args.double()), torch.cos(args.double())], dim=-1)


def time_mlp(W, p, x, cond=None, act=F.silu, post_act=None):
    """embeddings.TimestepEmbedding: linear_1 → act (its act_fn, SiLU by default) → linear_2 (→ post_act,
    its post_act_fn, when given). With `cond` (time_cond_proj_dim, LCM's timestep_cond) x + cond_proj(cond)
    (no bias) goes into linear_1; a None cond is skipped, as diffusers does."""
    if cond is not None:
        x = x + linear(W, p + '.cond_proj', cond, bias=False)
    out = linear(W, p + '.linear_2', act(linear(W, p + '.linear_1', x)))
    return post_act(out) if post_act is not None else out


def spatial_norm(W, p, f, zq):
    """attention_processor.SpatialNorm: GroupNorm(32 groups, eps 1e-6) of f times conv_y(zq) plus
    conv_b(zq), zq nearest-interpolated to f's size first (as diffusers does, before the 1x1 convs)."""
    zq = F.interpolate(zq, size=f.shape[-2:], mode='nearest')
    return group_norm(W, p + '.norm_layer', f, 32, 1e-6) * conv(W, p + '.conv_y', zq) + conv(W, p + '.conv_b', zq)


def upfirdn2d(x, k1d, up, down, pad0, pad1):
    """diffusers' upfirdn2d_native (upsampling.py) on [B, C, H, W], from its definition: up − 1 zeros
    after every sample of each axis, zero padding pad0 before and pad1 after, correlation with the
    flipped outer(k1d, k1d), every down-th output kept."""
    B, C, H, Wd = x.shape
    if up > 1:
        z = x.new_zeros(B, C, H * up, Wd * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad0, pad1, pad0, pad1))
    k = torch.outer(k1d, k1d).flip(0, 1).to(x.dtype)
    out = F.conv2d(x.reshape(B * C, 1, *x.shape[2:]), k[None, None])[:, :, ::down, ::down]
    return out.reshape(B, C, out.shape[2], out.shape[3])


def fir_resample(x, direction, kernel=(1, 3, 3, 1)):
    """upsample_2d / downsample_2d (FirUpsample2D / FirDownsample2D without conv): the kernel
    normalized to sum 1 in 2-D (so k / sum(k) per axis), times gain·factor² = 4 for 'up' (2 per axis);
    padding (pad_value + 1) // 2 (+ factor − 1 for up) before and pad_value // 2 after, pad_value = 4 − 2."""
    k = torch.tensor(kernel, dtype=torch.float64)
    k = k / k.sum()
    pv = len(kernel) - 2
    if direction == 'up':
        return upfirdn2d(x, 2 * k, 2, 1, (pv + 1) // 2 + 1, pv // 2)
    return upfirdn2d(x, k, 1, 2, (pv + 1) // 2, pv // 2)


def resnet(W, p, x, temb, groups, eps, output_scale_factor=1.0, zq=None, act=F.silu, resample=None, groups_out=None, time_norm='default'):
    """resnet.ResnetBlock2D (time_embedding_norm 'default', skip_time_act False); with zq,
    time_embedding_norm 'spatial': norm1 and norm2 are SpatialNorms over zq (and temb is unused);
    time_norm 'scale_shift': time_emb_proj gives [scale | shift] (2·C) and norm2(h)·(1 + scale) + shift
    replaces the addition after conv1. act: its nonlinearity (resnet_act_fn), after norm1, norm2 and on
    temb. resample 'up' / 'down' (up=True / down=True, no FIR kernel): after norm1 and act, the hidden
    states and the shortcut's input are both nearest-upsampled 2x (Upsample2D without conv) or 2x2
    average-pooled (Downsample2D without conv); 'fir_up' / 'fir_down' (kernel='fir'): FIR (1, 3, 3, 1)
    resampling of both instead. groups_out: norm2's groups (default groups). The 1x1 shortcut is there
    where its weight is (in ≠ out channels, or use_in_shortcut)."""
    if zq is not None:
        n1 = n2 = lambda q, t: spatial_norm(W, q, t, zq)
    else:
        n1 = lambda q, t: group_norm(W, q, t, groups, eps)
        n2 = lambda q, t: group_norm(W, q, t, groups if groups_out is None else groups_out, eps)
    h = act(n1(p + '.norm1', x))
    if resample == 'up':
        x, h = (F.interpolate(v, scale_factor=2.0, mode='nearest') for v in (x, h))
    elif resample == 'down':
        x, h = (F.avg_pool2d(v, kernel_size=2, stride=2) for v in (x, h))
    elif resample in ('fir_up', 'fir_down'):
        x, h = (fir_resample(v, resample[4:]) for v in (x, h))
    h = conv(W, p + '.conv1', h)
    t = linear(W, p + '.time_emb_proj', act(temb))[:, :, None, None] if temb is not None else None
    if t is not None and time_norm == 'scale_shift':
        scale, shift = t.chunk(2, dim=1)
        h = n2(p + '.norm2', h) * (1 + scale) + shift
    else:
        if t is not None:
            h = h + t
        h = n2(p + '.norm2', h)
    h = conv(W, p + '.conv2', act(h))
    if p + '.conv_shortcut.weight' in W:
        x = conv(W, p + '.conv_shortcut', x, padding=0)
    return (x + h) / output_scale_factor


def downsample(W, p, x, padding):
    """downsampling.Downsample2D with use_conv: padding 0 means an asymmetric (right, bottom) zero pad."""
    if padding == 0:
        x = F.pad(x, (0, 1, 0, 1))
    return conv(W, p + '.conv', x, stride=2, padding=padding)


def upsample(W, p, x, size=None):
    """upsampling.Upsample2D with use_conv: nearest to `size` (the skip's size) or to 2×, then a 3×3 conv."""
    x = F.interpolate(x, size=size, mode='nearest') if size is not None else F.interpolate(x, scale_factor=2.0, mode='nearest')
    return conv(W, p + '.conv', x)


def sdpa(q, k, v, heads):
    """[B, N, heads·d] projections → softmax(q·kᵀ/√d)·v, heads merged back. upcast_attention and
    upcast_softmax only change precision in diffusers, so float64 covers them."""
    B, N, inner = q.shape
    d = inner // heads
    split = lambda t: t.reshape(B, t.shape[1], heads, d).transpose(1, 2)
    w = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (w @ split(v)).transpose(1, 2).reshape(B, N, inner)


def attention(W, p, x, heads, context=None, bias=False):
    """attention_processor.Attention on [B, N, C] tokens (to_q/k/v, to_out.0)."""
    ctx = x if context is None else context
    o = sdpa(linear(W, p + '.to_q', x, bias), linear(W, p + '.to_k', ctx, bias), linear(W, p + '.to_v', ctx, bias), heads)
    return linear(W, p + '.to_out.0', o)


def spatial_attention(W, p, x, heads, groups, eps, rescale=1.0, zq=None):
    """attention_processor.Attention as the old AttentionBlock (UNet2DModel, VAE mid block): group norm
    on the feature map, biased q/k/v, residual connection, divided by rescale_output_factor. With zq
    (spatial_norm_dim, MoVQ): a SpatialNorm first, and no group norm when groups is None."""
    B, C, H, Wd = x.shape
    h = spatial_norm(W, p + '.spatial_norm', x, zq) if zq is not None else x
    if groups is not None:
        h = group_norm(W, p + '.group_norm', h, groups, eps)
    h = h.reshape(B, C, H * Wd).transpose(1, 2)
    h = attention(W, p, h, heads, bias=True)
    return (h.transpose(1, 2).reshape(B, C, H, Wd) + x) / rescale


def geglu_ff(W, p, x):
    """attention.FeedForward with activation_fn 'geglu': proj to 2·inner, value·GELU(gate), then net.2."""
    value, gate = linear(W, p + '.net.0.proj', x).chunk(2, dim=-1)
    return linear(W, p + '.net.2', value * F.gelu(gate))


def basic_transformer_block(W, p, x, context, heads, only_cross=False):
    """attention.BasicTransformerBlock, norm_type 'layer_norm': self-attn, cross-attn, GEGLU feed-forward.
    only_cross (only_cross_attention): attn1 attends to the context too."""
    x = x + attention(W, p + '.attn1', layer_norm(W, p + '.norm1', x), heads, context=context if only_cross else None)
    x = x + attention(W, p + '.attn2', layer_norm(W, p + '.norm2', x), heads, context=context)
    return x + geglu_ff(W, p + '.ff', layer_norm(W, p + '.norm3', x))


def transformer_2d(W, p, x, context, heads, groups, linear_projection, layers, only_cross=False):
    """transformer_2d.Transformer2DModel for continuous inputs (GroupNorm eps 1e-6, 1×1 conv or linear
    proj_in/proj_out around the blocks, residual)."""
    B, C, H, Wd = x.shape
    h = group_norm(W, p + '.norm', x, groups, 1e-6)
    if linear_projection:
        h = linear(W, p + '.proj_in', h.reshape(B, C, H * Wd).transpose(1, 2))
    else:
        h = conv(W, p + '.proj_in', h, padding=0)
        h = h.reshape(B, h.shape[1], H * Wd).transpose(1, 2)
    for i in range(layers):
        h = basic_transformer_block(W, f'{p}.transformer_blocks.{i}', h, context, heads, only_cross)
    if linear_projection:
        h = linear(W, p + '.proj_out', h).transpose(1, 2).reshape(B, C, H, Wd)
    else:
        h = conv(W, p + '.proj_out', h.transpose(1, 2).reshape(B, h.shape[2], H, Wd), padding=0)
    return h + x


class Weights(dict):
    """A weight dict that remembers which keys were read, so a model can prove it used them all."""

    def __init__(self, tensors):
        super().__init__({k: v.double() for k, v in tensors.items()})
        self.read = set()

    def __getitem__(self, k):
        self.read.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        if k in self:
            return self[k]
        return default

    def assert_all_used(self, skip=()):
        unused = sorted(k for k in set(self) - self.read if not k.startswith(tuple(skip)))
        if unused:
            raise ValueError(f'{len(unused)} weights unused by the reference: {unused[:8]}')
