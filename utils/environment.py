"""<run>/env.txt: what a run ran on, beside config.yaml and src/ (its code): Python, torch's
CUDA and cuDNN, the host and its GPUs, the command with its launcher, every installed package.
test.py reads it back and warns when its own environment differs in what matters."""
import importlib.metadata
import os
import platform
import re
import socket
import sys
from pathlib import Path

ENV_FILE = 'env.txt'


def installed():
    """{package name: version} of every installed distribution, names lower-cased. Name and
    Version are read from the head of each METADATA file, where the core metadata puts them,
    rather than by parsing it whole (0.2-0.5 s of a run's start-up for 150 packages)."""
    found = {}
    for dist in importlib.metadata.distributions():
        head = {}
        for line in (dist.read_text('METADATA') or dist.read_text('PKG-INFO') or '').splitlines():
            if not line.strip():  # the end of the headers
                break
            key, _, value = line.partition(':')
            if key in ('Name', 'Version'):
                head.setdefault(key, value.strip())
        if head.get('Name'):
            found.setdefault(head['Name'].lower().replace('_', '-'), head.get('Version'))
    return dict(sorted(found.items()))


def describe(command):
    import torch
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    lines = [f'command: {command}',
             f'python: {sys.version.split()[0]} ({sys.executable})',
             f'platform: {platform.platform()}',
             f'host: {socket.gethostname()}',
             f'torch: {torch.__version__}  cuda: {torch.version.cuda}  '
             f'cudnn: {torch.backends.cudnn.version()}',
             f"gpus: {len(gpus)}{': ' + ', '.join(gpus) if gpus else ''}",
             f"cuda_visible_devices: {os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}"]
    # what a launcher said of the job: torchrun's world, SLURM's allocation
    lines += [f'{k}: {v}' for k, v in sorted(os.environ.items())
              if k in ('WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') or
              k in ('SLURM_JOB_ID', 'SLURM_JOB_NAME', 'SLURM_NNODES', 'SLURM_NTASKS',
                    'SLURM_JOB_NODELIST', 'SLURM_GPUS_ON_NODE', 'SLURM_CPUS_PER_TASK')]
    lines.append('packages:')
    lines += [f'  {name}=={version}' for name, version in installed().items()]
    return '\n'.join(lines) + '\n'


def write_environment(folder, command):
    (Path(folder) / ENV_FILE).write_text(describe(command))


def recorded_packages(run_dir):
    """{package: version} of a run's env.txt; None when the run has none (an older run)."""
    path = Path(run_dir) / ENV_FILE
    if not path.is_file():
        return None
    text = path.read_text().partition('\npackages:\n')[2]
    return dict(line.strip().split('==', 1) for line in text.splitlines() if '==' in line)


def own_packages(root):
    """The project's own requirements (requirements.txt's names), torch first."""
    names = ['torch']
    for line in (Path(root) / 'requirements.txt').read_text().splitlines():
        match = re.match(r'\s*([A-Za-z0-9][A-Za-z0-9._-]*)', line.split('#')[0])
        if match and match.group(1).lower() not in names:
            names.append(match.group(1).lower().replace('_', '-'))
    return names


def differences(run_dir, root):
    """['torch 2.14.1 here, 2.6.0 in the run', ...]: the project's packages whose version here
    differs from the run's env.txt (a package absent on one side counts)."""
    then = recorded_packages(run_dir)
    if then is None:
        return []
    now = installed()
    return [f"{name} {now.get(name, 'missing')} here, {then.get(name, 'missing')} in the run"
            for name in own_packages(root) if now.get(name) != then.get(name)]
