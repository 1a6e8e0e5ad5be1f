"""Reads and writes .safetensors files with torch alone (the safetensors package is not installed here)."""
import json
import struct

import torch

_DTYPES = {'F32': torch.float32, 'F64': torch.float64, 'I64': torch.int64, 'F16': torch.float16, 'I32': torch.int32}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read(path):
    """Returns {name: tensor} with each tensor in its stored dtype."""
    with open(path, 'rb') as f:
        blob = f.read()
    n = struct.unpack('<Q', blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == '__metadata__':
            continue
        start, end = meta['data_offsets']
        raw = bytearray(blob[base + start:base + end])
        t = torch.frombuffer(raw, dtype=_DTYPES[meta['dtype']]) if raw else torch.empty(0, dtype=_DTYPES[meta['dtype']])
        out[name] = t.reshape(meta['shape']).clone()
    return out


def write(path, tensors, metadata=None):
    """Writes {name: tensor} in name order, sorted by name with an 8-byte aligned header; `metadata` (str -> str,
    default {'format': 'pt'}) in key order."""
    header = {'__metadata__': dict(sorted((metadata or {'format': 'pt'}).items()))}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        data = _tobytes(t)
        header[name] = {'dtype': _NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(',', ':')).encode()
    head += b' ' * ((8 - len(head) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)


def _tobytes(t):
    # numpy is absent here, so the bytes come from a uint8 view of the (little-endian) tensor.
    flat = t.reshape(-1).view(torch.uint8) if t.numel() else torch.empty(0, dtype=torch.uint8)
    return bytes(flat.tolist())
