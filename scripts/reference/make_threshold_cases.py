"""Writes tests/fixtures/variants/threshold-cases.json: dynamic thresholding (diffusers'
_threshold_sample: torch.quantile of |x0| per batch item, clamp to [1, sample_max_value], then
clamp(x0, -s, s) / s) evaluated by torch in float32, on inputs chosen to pin torch.quantile's rank
and interpolation rules: ties, integral ranks, ratios 0 and 1, one element, -0.0, wide exponents.

    /usr/bin/python3 -B scripts/reference/make_threshold_cases.py   (Debian python3-torch 1.13, as the fixtures)
"""
import json
import os

import torch


def threshold(sample, ratio, max_value):
    b = sample.shape[0]
    flat = sample.reshape(b, -1)
    s = torch.quantile(flat.abs(), ratio, dim=1)
    s = torch.clamp(s, min=1, max=max_value).unsqueeze(1)
    return (torch.clamp(flat, -s, s) / s).reshape(sample.shape), s.squeeze(1)


def case(name, x, ratio, max_value):
    x = torch.tensor(x, dtype=torch.float32) if not isinstance(x, torch.Tensor) else x.float()
    out, s = threshold(x, ratio, max_value)
    return {'name': name, 'shape': list(x.shape), 'ratio': ratio, 'sample_max_value': max_value,
            'x': x.flatten().tolist(), 's': s.tolist(), 'out': out.flatten().tolist()}


g = torch.Generator().manual_seed(7)
cases = [
    case('ties and an integral rank', [[0.5, -3.0, 3.0, 3.0, -2.0, 2.0, 7.0, -7.0, 1.0]], 0.5, 10.0),
    case('interpolated rank, two items', torch.randn(2, 4, 3, 3, generator=g) * 4, 0.8, 6.0),
    case('diffusers defaults (0.995, 1.0)', torch.randn(2, 64, generator=g) * 3, 0.995, 1.0),
    case('ratio 0', torch.randn(1, 50, generator=g) * 5, 0.0, 100.0),
    case('ratio 1', torch.randn(1, 50, generator=g) * 5, 1.0, 100.0),
    case('one element', [[-4.5]], 0.7, 10.0),
    case('quantile under 1 clamps to 1', torch.randn(3, 33, generator=g) * 0.2, 0.9, 5.0),
    case('negative zeros and wide exponents', [[-0.0, 0.0, 1e-30, -1e-20, 3e4, -2.5e5, 7.0, 1e-3, -1e8, 12.0, 0.0]], 0.75, 1e9),
    case('4096 per item, many duplicates', torch.round(torch.randn(2, 4, 32, 32, generator=g) * 8) / 2, 0.995, 20.0),
]

out = os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'fixtures', 'variants', 'threshold-cases.json')
with open(out, 'w') as f:
    json.dump({'torch': torch.__version__, 'cases': cases}, f)
    f.write('\n')
print(f'wrote {len(cases)} cases to {os.path.normpath(out)}')
