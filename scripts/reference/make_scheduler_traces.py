"""Scheduler traces from diffusers' own scheduler code, for configs the shared fixtures do not cover.

The scheduler files of diffusers v0.25.1 (scheduling_*.py, unmodified) run on small stand-ins for the
package around them (diffusers_stub/: config attribute access, BaseOutput, randn_tensor), so every
step is diffusers' arithmetic in torch float32 and numpy, exactly as a diffusers install would do it.
The recipe is the shared fixtures' (shared/fixtures/README.md): x = x_init; for each step
m = scale_model_input(x, t); eps = 0.1·m + c; x = step(eps, t, x).prev_sample, with the noise a step
draws recorded as step{i}_noise. `--check DIR` first regenerates the shared sched-* fixtures from their
own x_init, c and noise and refuses to write anything unless they match to the bit, which needs the
fixtures' own torch and numpy (Debian bookworm's python3-torch 1.13 and python3-numpy, /usr/bin/python3).

    git -C <diffusers checkout> archive v0.25.1 src/diffusers/schedulers | tar -x -C /tmp/d025
    apt install python3-torch python3-numpy
    /usr/bin/python3 -B scripts/reference/make_scheduler_traces.py \\
        --schedulers /tmp/d025/src/diffusers/schedulers --check ../shared/fixtures
"""
import argparse
import glob
import importlib
import inspect
import json
import os
import shutil
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402

OUT = os.path.join(HERE, '..', '..', 'tests', 'fixtures', 'variants')
MODULES = {
    'DDPMScheduler': 'scheduling_ddpm',
    'DDIMScheduler': 'scheduling_ddim',
    'EulerDiscreteScheduler': 'scheduling_euler_discrete',
    'EulerAncestralDiscreteScheduler': 'scheduling_euler_ancestral_discrete',
    'LCMScheduler': 'scheduling_lcm',
    'DPMSolverMultistepScheduler': 'scheduling_dpmsolver_multistep',
    'PNDMScheduler': 'scheduling_pndm',
}


def load_diffusers(schedulers_dir):
    """Puts diffusers_stub plus the given scheduling_*.py files on sys.path as package `diffusers`."""
    root = tempfile.mkdtemp(prefix='diffusers-stub-')
    shutil.copytree(os.path.join(HERE, 'diffusers_stub'), root, dirs_exist_ok=True)
    dst = os.path.join(root, 'diffusers', 'schedulers')
    os.makedirs(dst)
    open(os.path.join(dst, '__init__.py'), 'w').close()
    for name in ['scheduling_utils', *MODULES.values()]:
        shutil.copy(os.path.join(schedulers_dir, name + '.py'), dst)
    sys.path.insert(0, root)


def scheduler_class(name):
    return getattr(importlib.import_module(f'diffusers.schedulers.{MODULES[name]}'), name)


class NoiseTape:
    """Replaces the module's randn_tensor: records what each step draws, or plays noise back."""

    def __init__(self, module, playback=None):
        self.module, self.playback, self.drawn = module, playback, []
        # Schedulers that never draw noise (PNDM) do not import it.
        self.original = getattr(module, 'randn_tensor', None)
        module.randn_tensor = self

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        t = self.playback.pop(0) if self.playback is not None else torch.randn(shape, generator=generator, dtype=dtype)
        self.drawn.append(t.clone())
        return t

    def close(self):
        if self.original is None:
            del self.module.randn_tensor
        else:
            self.module.randn_tensor = self.original


def run(config, steps, x_init, c, step_kwargs, noise=None, start=0):
    """The trace tensors of one case; `noise` (a list per step, None for none) plays recorded noise back.

    start > 0 runs timesteps[start:] on a fresh scheduler, as diffusers' img2img and inpainting
    pipelines do (get_timesteps: timesteps[t_start * order:], order 1 for all of these): the steps
    keep their index i in the names, and multistep state (PLMS's counter, DPM-Solver's lower-order
    warm-up) starts over at the first step run."""
    cls = scheduler_class(config['_class_name'])
    sched = cls(**{k: v for k, v in config.items() if not k.startswith('_')})
    sched.set_timesteps(steps)
    module = sys.modules[cls.__module__]
    x = x_init.clone()
    out = {'x_init': x_init, 'c': c, 'timesteps': sched.timesteps.clone()}
    g = torch.Generator().manual_seed(1234)
    # PNDM's step takes no generator.
    extra = {'generator': g} if 'generator' in inspect.signature(sched.step).parameters else {}
    for i, t in enumerate(sched.timesteps):
        if i < start:
            continue
        m = sched.scale_model_input(x, t)
        eps = 0.1 * m + c
        tape = NoiseTape(module, None if noise is None else ([noise[i]] if noise[i] is not None else []))
        try:
            x = sched.step(eps, t, x, **extra, **step_kwargs).prev_sample
        finally:
            tape.close()
        drawn = tape.drawn
        out[f'step{i}_model_input'] = m.clone()
        out[f'step{i}_noise'] = drawn[0] if drawn else torch.zeros_like(x)
        out[f'step{i}_out'] = x.clone()
    return out


def check_shared(shared):
    """Regenerates every sched-* fixture from its own inputs and noise; they must match to the bit."""
    for folder in sorted(glob.glob(os.path.join(shared, 'sched-*'))):
        case = json.load(open(os.path.join(folder, 'case.json')))
        config = json.load(open(os.path.join(folder, 'scheduler_config.json')))
        ref = safetensors_io.read(os.path.join(folder, 'trace.safetensors'))
        steps = case['steps']
        noise = [ref[f'step{i}_noise'] if ref[f'step{i}_noise'].abs().max() > 0 else None for i in range(steps)]
        got = run(config, steps, ref['x_init'], ref['c'], case.get('step_kwargs', {}), noise)
        worst = 0.0
        for k, v in ref.items():
            err = (got[k].double() - v.double()).abs().max().item() / max(v.double().abs().max().item(), 1e-30)
            worst = max(worst, err)
            # The fixtures' torch (1.13, Debian's python3-torch) reproduces them to the bit; another
            # torch rounds some float32 ops differently, and its traces would test that torch instead.
            if err > 0:
                raise SystemExit(f'{os.path.basename(folder)}: {k} is {err:.3g} of max|ref| off the diffusers fixture; not writing anything')
        print(f'{os.path.basename(folder)}: regenerated, worst {worst:.2e} of max|ref| ({steps} steps, torch {torch.__version__})')


SD = {'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'beta_end': 0.012}

# name, config, steps, step kwargs, sample shape
CASES = [
    ('sched-euler-karras', {'_class_name': 'EulerDiscreteScheduler', **SD, 'use_karras_sigmas': True}, 10, {}, [1, 4, 4, 4]),
    ('sched-euler-karras-v-leading', {'_class_name': 'EulerDiscreteScheduler', **SD, 'use_karras_sigmas': True,
                                      'prediction_type': 'v_prediction', 'timestep_spacing': 'leading', 'steps_offset': 1}, 7, {}, [2, 3, 4, 5]),
    ('sched-dpm-karras-20', {'_class_name': 'DPMSolverMultistepScheduler', **SD, 'use_karras_sigmas': True}, 20, {}, [1, 4, 4, 4]),
    ('sched-dpm-karras-heun-8', {'_class_name': 'DPMSolverMultistepScheduler', **SD, 'use_karras_sigmas': True,
                                 'solver_type': 'heun', 'prediction_type': 'v_prediction'}, 8, {}, [1, 4, 4, 4]),
    ('sched-dpm-threshold', {'_class_name': 'DPMSolverMultistepScheduler', 'thresholding': True,
                             'dynamic_thresholding_ratio': 0.9, 'sample_max_value': 2.0}, 12, {}, [2, 4, 4, 4]),
    ('sched-ddim-threshold', {'_class_name': 'DDIMScheduler', **SD, 'thresholding': True,
                              'dynamic_thresholding_ratio': 0.8, 'sample_max_value': 6.0}, 8, {'eta': 0.5}, [2, 4, 4, 4]),
    ('sched-ddpm-threshold-v', {'_class_name': 'DDPMScheduler', 'thresholding': True, 'prediction_type': 'v_prediction',
                                'sample_max_value': 2.5}, 6, {}, [2, 3, 5, 7]),
    ('sched-lcm-threshold', {'_class_name': 'LCMScheduler', **SD, 'thresholding': True, 'sample_max_value': 3.0}, 4, {}, [2, 4, 4, 4]),
    ('sched-euler-a-v-trailing', {'_class_name': 'EulerAncestralDiscreteScheduler', **SD, 'prediction_type': 'v_prediction',
                                  'timestep_spacing': 'trailing', 'rescale_betas_zero_snr': True}, 6, {}, [1, 4, 4, 4]),
    ('sched-pndm-sd', {'_class_name': 'PNDMScheduler', **SD, 'skip_prk_steps': True, 'steps_offset': 1,
                       'set_alpha_to_one': False}, 12, {}, [1, 4, 4, 4]),
    ('sched-ddim-zero-snr-trailing', {'_class_name': 'DDIMScheduler', **SD, 'rescale_betas_zero_snr': True,
                                      'timestep_spacing': 'trailing', 'prediction_type': 'v_prediction', 'clip_sample': False}, 9, {}, [1, 4, 4, 4]),
    # epsilon at ᾱ = 0: diffusers' x0 is ±inf, made finite again by the clip (a threshold gives NaN)
    ('sched-ddim-zero-snr-eps-clip', {'_class_name': 'DDIMScheduler', **SD, 'rescale_betas_zero_snr': True,
                                      'timestep_spacing': 'trailing', 'clip_sample_range': 1.5}, 6, {'eta': 0.4}, [1, 4, 4, 4]),
    ('sched-ddpm-zero-snr-eps-clip', {'_class_name': 'DDPMScheduler', 'rescale_betas_zero_snr': True, 'timestep_spacing': 'linspace',
                                      'variance_type': 'fixed_large'}, 5, {}, [2, 4, 4, 4]),
    # DPM++ 2M SDE: fresh noise every step, midpoint and heun second-order terms
    ('sched-dpm-sde', {'_class_name': 'DPMSolverMultistepScheduler', **SD, 'algorithm_type': 'sde-dpmsolver++'}, 12, {}, [1, 4, 4, 4]),
    ('sched-dpm-sde-karras-heun-v', {'_class_name': 'DPMSolverMultistepScheduler', **SD, 'algorithm_type': 'sde-dpmsolver++',
                                     'use_karras_sigmas': True, 'solver_type': 'heun', 'prediction_type': 'v_prediction'}, 8, {}, [2, 4, 4, 4]),
]

# img2img / inpainting: the loop runs timesteps[start:] on a fresh scheduler (name, config, steps, start, shape).
# PNDM's list d0, d1, d1, d2, ...: start 2 begins on the repeated d1, start 5 past it; DPM-Solver++
# restarts first order; Euler ancestral finds its step index from the timestep.
START_CASES = [
    ('sched-pndm-img2img-2', {'_class_name': 'PNDMScheduler', **SD, 'skip_prk_steps': True, 'steps_offset': 1,
                              'set_alpha_to_one': False}, 10, 2, [1, 4, 4, 4]),
    ('sched-pndm-img2img-5', {'_class_name': 'PNDMScheduler', **SD, 'skip_prk_steps': True, 'steps_offset': 1,
                              'set_alpha_to_one': False}, 10, 5, [2, 4, 4, 4]),
    ('sched-dpm-img2img', {'_class_name': 'DPMSolverMultistepScheduler', **SD}, 12, 4, [1, 4, 4, 4]),
    ('sched-euler-a-img2img', {'_class_name': 'EulerAncestralDiscreteScheduler', **SD}, 8, 3, [1, 4, 4, 4]),
    ('sched-dpm-sde-img2img', {'_class_name': 'DPMSolverMultistepScheduler', **SD, 'algorithm_type': 'sde-dpmsolver++'}, 10, 3, [1, 4, 4, 4]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--schedulers', required=True, help="diffusers v0.25.1's src/diffusers/schedulers folder")
    ap.add_argument('--check', required=True, help='shared fixtures folder with the diffusers sched-* cases')
    a = ap.parse_args()
    load_diffusers(a.schedulers)
    check_shared(a.check)
    for name, config, steps, kwargs, shape, start in [(*c, 0) for c in CASES] + [(n, cfg, st, {}, sh, s0) for n, cfg, st, s0, sh in START_CASES]:
        g = torch.Generator().manual_seed(sum(map(ord, name)))
        cls = scheduler_class(config['_class_name'])
        probe = cls(**{k: v for k, v in config.items() if not k.startswith('_')})
        probe.set_timesteps(steps)
        x_init = torch.randn(shape, generator=g) * probe.init_noise_sigma
        c = torch.randn(shape, generator=g)
        trace = run(config, steps, x_init, c, kwargs, start=start)
        bad = [k for k, v in trace.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise SystemExit(f'{name}: diffusers gives non-finite {bad[0]}; not a usable case')
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        full = {**{k: v for k, v in probe.config.items()}, '_class_name': config['_class_name'], '_diffusers_version': '0.25.1'}
        with open(os.path.join(folder, 'scheduler_config.json'), 'w') as f:
            json.dump(full, f, indent=2, sort_keys=True)
            f.write('\n')
        with open(os.path.join(folder, 'case.json'), 'w') as f:
            json.dump({'class': config['_class_name'], 'steps': steps, 'step_kwargs': kwargs, **({'start': start} if start else {}),
                       'model': 'eps = 0.1 * model_input + c',
                       'note': 'made by scripts/reference/make_scheduler_traces.py from diffusers v0.25.1 scheduler code'}, f, indent=1)
            f.write('\n')
        safetensors_io.write(os.path.join(folder, 'trace.safetensors'), trace)
        print(f'{name}: {steps} steps, timesteps {trace["timesteps"].tolist()}')


if __name__ == '__main__':
    main()
