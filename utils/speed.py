"""The settings that decide speed on a GPU, read from a config the same way by both entrypoints,
--check and the benchmark:

    trainer_params: {precision: bf16-mixed, benchmark: true, tf32: true}
    train_wrapper.args.model_spec: {name: ..., compile: true, channels_last: true}
    data_module.args: {loader: memory}
"""
import os
import time
from pathlib import Path

IMPORTED = time.time()
NVML_CHECK = 'PYTORCH_NVML_BASED_CUDA_CHECK'
NVML_CHECK_AT_START = os.environ.get(NVML_CHECK)  # before lightning_fabric's import sets it


def on_off(value):
    if isinstance(value, dict):  # compile: {mode: max-autotune, ...}
        return 'on (' + ', '.join(f'{k}={v}' for k, v in value.items()) + ')'
    return 'on' if value else 'off'


def model_specs(cfg):
    """Every model spec of the training wrapper (a GAN has two)."""
    args = (cfg.get('train_wrapper') or {}).get('args') or {}
    return [v for k, v in args.items() if k.endswith('_spec') and isinstance(v, dict)
            and k not in ('loss_spec', 'optim_spec', 'sched_spec', 'g_optim_spec', 'd_optim_spec')]


def speed_settings(cfg):
    """{setting: 'on' / 'off' / value}: what --check and the benchmark print."""
    params = cfg.get('trainer_params') or {}
    specs = model_specs(cfg)
    data = (cfg.get('data_module') or {}).get('args') or {}
    return {'precision': str(params.get('precision', '32-true')),
            'compile': on_off(next((s['compile'] for s in specs if s.get('compile')), False)),
            'channels_last': on_off(any(s.get('channels_last') for s in specs)),
            'tf32': on_off(params.get('tf32')),
            'cudnn.benchmark': on_off(params.get('benchmark')),
            'loader': data.get('loader', 'dataloader')}


def set_tf32(enabled):
    """`trainer_params.tf32: true`: float32 matrix multiplies in TensorFloat-32 on Ampere and
    newer GPUs (about 8x the fp32 throughput, 10 bits of mantissa). cuDNN convolutions use TF32
    already by default. Nothing changes on a CPU."""
    if enabled:
        import torch
        torch.set_float32_matmul_precision('high')


def cpu_cuda_check():
    """For a run in one CPU process: torch.cuda.is_available() asked as the environment says.

    lightning_fabric's import sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (ask NVML, which does not
    poison a later fork). Until CUDA is initialized, which a CPU run never does, torch does not
    cache that answer: each is_available() loads libnvidia-ml again, and Adam and AdamW ask it
    at every step (torch.optim's graph-capture check), a few percent of a small model's step.
    """
    if NVML_CHECK_AT_START is None:
        os.environ.pop(NVML_CHECK, None)
    else:
        os.environ[NVML_CHECK] = NVML_CHECK_AT_START


def process_age():
    """Seconds since this process was launched: /proc's start time on Linux (counting the
    interpreter and every import), else since this module was imported."""
    try:
        start_ticks = int(Path('/proc/self/stat').read_text().rsplit(')', 1)[1].split()[19])
        uptime = float(Path('/proc/uptime').read_text().split()[0])
        return uptime - start_ticks / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError):
        return time.time() - IMPORTED


def first_step_line(seconds_after_launch, first_step_seconds):
    """The log.txt line both entrypoints write once: time-to-first-step, and how long that
    step took (with `compile: true`, mostly compilation)."""
    return (f'first step: {seconds_after_launch:.2f} s after launch (the step itself '
            f'{first_step_seconds:.2f} s)')
