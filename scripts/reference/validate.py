"""Checks the reference against the real-diffusers fixtures: prints max|ref - diffusers| / max|diffusers|.

Usage: python validate.py [fixtures_dir]   (default: the shared fixtures beside the repo)
Exits non-zero if any case is off by more than 1e-5 of its output's scale.
"""
import os
import sys

from run_case import run

CASES = ['unet2d-cond', 'unet2d-ddpm', 'unet2d-classcond', 'vae-kl-decode', 'vae-kl-encode', 'vq', 'taesd']
LIMIT = 1e-5
LAST_WORST = None  # the worst ratio of the last main() run, for the generator's notes


def main():
    global LAST_WORST
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '../../../shared/fixtures')
    worst = 0.0
    for name in CASES:
        out, io = run(os.path.join(root, name))
        ref = io['out']
        err = (out - ref).abs().max().item()
        scale = ref.abs().max().item()
        worst = max(worst, err / scale)
        print(f'{name}: max|err| {err:.2e}  max|out| {scale:.2e}  ratio {err / scale:.2e}')
    LAST_WORST = worst
    print(f'worst ratio {worst:.2e} (limit {LIMIT:.0e})')
    return 0 if worst <= LIMIT else 1


if __name__ == '__main__':
    sys.exit(main())
