# randn_tensor as diffusers has it on the CPU: torch.randn with the given generator.
import torch


def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)
