"""Writes tests/fixtures/canny-opencv/: RGB PNG inputs and OpenCV's cv2.Canny(image, low, high) of each
(aperture 3, L1 gradient: the call diffusers' ControlNet examples make on an RGB array), as gray PNGs, with
canny.json listing them. Needs numpy, pillow and opencv-python-headless beside torch-free Python:

    /tmp/refenv/bin/pip install --no-index --no-deps numpy pillow opencv_python_headless
    /tmp/refenv/bin/python make_canny_cases.py

Seeded: a rerun is byte-identical.
"""
import json
import os

import cv2
import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '../../tests/fixtures/canny-opencv')


def shapes(w, h, seed):
    """Gradients with filled shapes: long, connected edges of varied strength and direction."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 100 * np.sin((x + 2 * y) / 3)], -1)
    img = Image.fromarray(a.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(2, max(3, w // 2)), y0 + rng.integers(2, max(3, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=fill)
    d.line([(0, h - 1), (w - 1, 0)], fill=(255, 255, 255), width=1)
    return np.asarray(img)


def blobs(w, h, seed):
    """Smoothed noise: soft edges whose weak parts only survive through hysteresis."""
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    return cv2.GaussianBlur(n, (7, 7), 2.0)


def noise(w, h, seed):
    """Raw noise: every pixel an edge candidate, channel selection and ties everywhere."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)


CASES = [
    # name, image, thresholds
    ('shapes-37x23', lambda: shapes(37, 23, 1), [(100, 200), (50, 150), (200, 100), (300, 500)]),
    ('blobs-64x48', lambda: blobs(64, 48, 2), [(40, 100), (20, 60), (10.7, 30.2)]),
    ('noise-19x13', lambda: noise(19, 13, 3), [(100, 200), (300, 600)]),
    ('gray-shapes-24x16', lambda: np.repeat(cv2.cvtColor(shapes(24, 16, 4), cv2.COLOR_RGB2GRAY)[..., None], 3, -1), [(100, 200)]),
    ('flat-9x7', lambda: np.full((7, 9, 3), 77, np.uint8), [(100, 200), (0, 0)]),
    ('row-17x1', lambda: noise(17, 1, 5), [(100, 200)]),
    ('column-1x17', lambda: noise(1, 17, 6), [(100, 200)]),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    listing = []
    for name, make, thresholds in CASES:
        img = make()
        Image.fromarray(img).save(os.path.join(OUT, f'{name}.png'))
        for low, high in thresholds:
            edges = cv2.Canny(img, low, high)
            out = f'{name}-canny-{low}-{high}.png'
            Image.fromarray(edges).save(os.path.join(OUT, out))
            listing.append({'input': f'{name}.png', 'low': low, 'high': high, 'output': out, 'edges': int((edges > 0).sum())})
            print(out, int((edges > 0).sum()), 'edge pixels of', edges.size)
    with open(os.path.join(OUT, 'canny.json'), 'w') as f:
        json.dump({'made_by': f'scripts/reference/make_canny_cases.py: OpenCV {cv2.__version__} cv2.Canny(rgb, low, high) (aperture 3, L1)', 'cases': listing}, f, indent=1)


if __name__ == '__main__':
    main()
