"""The command line both entrypoints share, and run folders: save/<name>/ with config.yaml,
src/ (the code as it ran), env.txt (what it ran on), ckpt/, TensorBoard events and log.txt."""
import argparse
import contextlib
import errno
import fnmatch
import io
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .config import Provenance, load_config, read_yaml, shown
from . import writer
from .environment import ENV_FILE, write_environment
from .errors import ConfigError, at_key
from .weights import find_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--config', help='YAML config (default with --resume: the run\'s config.yaml)')
    p.add_argument('--name', help='run folder name under --save-dir (default: config file stem)')
    p.add_argument('--gpu', help='comma-separated GPU ids, e.g. 0,1 (default: CPU)')
    p.add_argument('--resume', metavar='RUN_DIR_OR_CKPT',
                   help='continue save/<name> from ckpt/last.ckpt, or from a .ckpt file; '
                        '`auto`: continue --name if it has a checkpoint, start it otherwise')
    p.add_argument('--seed', type=int, help='overrides the config\'s seed')
    p.add_argument('--save-dir', default='save', help='where run folders live (default: save)')
    p.add_argument('--debug', action='store_true', help='show tracebacks of config errors')
    p.add_argument('--print-config', action='store_true',
                   help='print the resolved config and exit')
    p.add_argument('--explain', action='append', metavar='KEY',
                   help='say which file or override set KEY (and what it replaced), and exit')
    p.add_argument('--check', action='store_true',
                   help='build everything, run one train and one val batch, print a summary '
                        'and exit; writes nothing')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE',
                   help='config overrides: a.b=1, +new.key=1, ~drop.key')
    return p


def start(entry, doc, argv):
    """What every entrypoint does first: parse its command line, resolve the run (config,
    overrides, run folder) and answer --print-config / --explain. Returns (args, run), with
    run None once the config has been printed."""
    from .guards import fail_together, join_launcher
    args = parser(doc.splitlines()[0]).parse_intermixed_args(argv)
    run, error = None, None
    try:
        gpus = parse_gpus(args.gpu)
    except ConfigError as e:
        gpus, error = [], e
    join_launcher(gpus)  # under torchrun or srun: every rank hears of a mistake on one of them
    if error is None:
        try:
            run = Run(args, argv, entry)
        except ConfigError as e:
            error = e
    fail_together(error)
    if args.check:  # Ctrl-C while checking: nothing was written, so nothing to save or say
        signal.signal(signal.SIGINT, interrupted_check)
    if args.print_config or args.explain:
        run.print_config(args.explain)
        return args, None
    return args, run


def interrupted_check(signum, frame):
    print('error: interrupted (SIGINT) during --check; nothing was written', file=sys.stderr)
    sys.exit(128 + signum)


def is_rank_zero():
    """True in the process that owns the run folder. Launchers (torchrun, SLURM, Lightning's
    own DDP launcher) tell the other processes their rank through these variables."""
    return all(int(os.environ.get(k, 0)) == 0
               for k in ('RANK', 'LOCAL_RANK', 'NODE_RANK', 'SLURM_PROCID'))


def launcher():
    """(processes per node, nodes) when a launcher started this process as one of several:
    torchrun (LOCAL_WORLD_SIZE, WORLD_SIZE) or SLURM's srun (SLURM_NTASKS, SLURM_NNODES);
    None otherwise."""
    env = os.environ
    if 'LOCAL_WORLD_SIZE' in env and 'WORLD_SIZE' in env:
        local = int(env['LOCAL_WORLD_SIZE'])
        return local, max(int(env['WORLD_SIZE']) // local, 1)
    if int(env.get('SLURM_NTASKS', 1)) > 1:
        nodes = int(env.get('SLURM_NNODES', 1))
        return int(env['SLURM_NTASKS']) // nodes, nodes
    return None


def launch_prefix(entry):
    """What comes before `entry` on the command line that started this process: `python`, or
    the launcher's own command (torchrun's, read from its process) with its arguments."""
    if 'TORCHELASTIC_RUN_ID' in os.environ:
        try:
            parent = Path(f'/proc/{os.getppid()}/cmdline').read_bytes().decode().split('\0')
            at = next(i for i, a in enumerate(parent) if Path(a).name == entry)
            words = ['torchrun' if a.endswith('torch.distributed.run') else a
                     for a in parent[:at]]
            if words[:1] and Path(words[0]).name.startswith('python') and words[1:2] == ['-m']:
                words = words[2:]  # python -m torch.distributed.run: torchrun
            return words
        except (OSError, StopIteration, UnicodeDecodeError):
            return ['torchrun', '...']
    if int(os.environ.get('SLURM_NTASKS', 1)) > 1:
        return ['srun', '...', 'python']
    return ['python']


def check_name(name):
    if not name or name in ('.', '..') or '/' in name or '\\' in name or name.startswith('.'):
        raise ConfigError(f"--name must be a plain folder name, but got '{name}'")
    if len(name.encode()) > 200:  # room for the temporary name a new run folder is made under
        raise ConfigError(f'--name is {len(name.encode())} bytes long; keep it under 200')
    if name != name.strip() or any(not c.isprintable() for c in name):
        raise ConfigError(f'--name must be a plain folder name, but got {name!r} (spaces at '
                          'its ends, or a character that is not printable)')


def find_resume(target):
    """--resume RUN_DIR or a .ckpt file -> (run folder, checkpoint file)."""
    what = f'--resume {target}'
    ckpt = find_checkpoint(target, what)
    run_dir = ckpt.parent.parent
    if not (run_dir / 'config.yaml').is_file():
        raise ConfigError(f'{what}: not inside a run folder (no {run_dir / "config.yaml"})')
    load_checkpoint(ckpt, what, mmap=True)
    return run_dir, ckpt


def replace_atomically(path, write):
    """write(tmp) makes a temporary file beside `path`, which is then renamed into place: a
    kill at any moment leaves the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.tmp')  # one writer per file: rank 0
    try:
        with disk_errors(path):
            write(tmp)
            os.replace(tmp, path)  # a new file: a hard link to `path` keeps its old bytes
    finally:
        if tmp.exists():
            tmp.unlink()


# What a file system says when the mistake is where the files go, not in the code.
DISK_ERRORS = {errno.ENOSPC: 'the disk is full', errno.EDQUOT: 'the disk quota is exceeded',
               errno.EROFS: 'a read-only file system', errno.EACCES: 'no permission',
               errno.EPERM: 'no permission', errno.ENOTDIR: 'a file where a folder should be'}


@contextlib.contextmanager
def disk_errors(path=None):
    """A full disk, a read-only or unwritable folder, a file where a folder should be: one
    line (ConfigError) naming the path (the error's own, else `path`), not a traceback."""
    try:
        yield
    except OSError as e:
        if e.errno not in DISK_ERRORS:
            raise
        raise ConfigError(f'cannot write {e.filename or path or "a file"}: '
                          f'{DISK_ERRORS[e.errno]} ({e.strerror})') from None


def check_output(path, own, flag):
    """Refuse (one line) an output path that would land on an existing file of a run folder
    (a folder with a config.yaml) that is not one of `own`, the tool's own outputs (patterns
    relative to the run folder, e.g. 'eval/*.csv'): its checkpoints, config and log are never
    written over by mistake. Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f'{flag} {path}: is a folder; give a file name')
    if not (path.exists() or path.is_symlink()):
        return path
    resolved = path.resolve()
    for folder in resolved.parents:
        if (folder / 'config.yaml').is_file():
            rel = resolved.relative_to(folder)
            if not any(len(Path(p).parts) == len(rel.parts) and fnmatch.fnmatch(str(rel), p)
                       for p in own):
                raise ConfigError(f'{flag} {path}: would overwrite {rel} of the run folder '
                                  f'{folder}; give a new file name')
            break
    return path


def write_text(path, text):
    replace_atomically(path, lambda tmp: Path(tmp).write_text(text))


def quote(word):
    """shlex.quote, but a word with a newline or another control character is written as
    bash's $'...', so the command stays one line (config.yaml's `# stamp: command`)."""
    if not any(ord(c) < 32 or ord(c) == 127 for c in word):
        return shlex.quote(word)
    escaped = {'\\': '\\\\', "'": "\\'", '\n': '\\n', '\t': '\\t', '\r': '\\r'}
    return "$'" + ''.join(escaped.get(c, f'\\x{ord(c):02x}' if ord(c) < 32 or ord(c) == 127
                                      else c) for c in word) + "'"


def atomic_save(obj, path):
    """torch.save to `path`, whole or not at all, and on disk (fsync'd), not only in the page
    cache. The bytes are made now; utils/writer.py's thread writes them while training goes
    on (utils.load_checkpoint waits for it)."""
    import torch
    writer.wait()  # the previous checkpoint is on disk: one at a time in memory
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # ckpt/ before the first save
    buffer = io.BytesIO()
    torch.save(obj, buffer)

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
    writer.submit(lambda: replace_atomically(path, write))


def atomic_link(src, path):
    """Make `path` another name of the file `src` (a hard link: no second write of the same
    checkpoint), atomically, once `src` is written; a copy where the file system has no hard
    links."""
    def link(tmp):
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    writer.submit(lambda: replace_atomically(path, link))


class Run:
    """What an entrypoint needs to start or continue one run, resolved from its arguments
    before anything is built or written."""

    def __init__(self, args, argv, entry):
        # --print-config, --explain and --check only look: an existing run folder is fine.
        self.looking = bool(args.print_config or args.explain or args.check)
        self.command = ' '.join(quote(a) for a in [*launch_prefix(entry), entry, *argv])
        if args.resume == 'auto':  # a requeued job: the same command starts or continues
            if not args.name:
                raise ConfigError('--resume auto needs --name')
            check_name(args.name)
            folder = Path(args.save_dir) / args.name
            args.resume = str(folder) if (folder / 'ckpt' / 'last.ckpt').is_file() else None
            # died before a checkpoint (or a folder made for it, as Ray Tune makes a trial's)
            self.reopen = folder.is_dir() and args.resume is None
            self.started_before = self.reopen and (folder / 'log.txt').is_file()
        else:
            self.reopen = self.started_before = False
        self.resuming = bool(args.resume) or self.reopen
        self.saved_cfg = None  # a resumed run's config.yaml, as it ran until now
        self.config_before = None  # (its text, last.ckpt) before a resume rewrote it
        if args.resume:
            self.dir, self.ckpt = find_resume(args.resume)
            self.config_path = Path(args.config or self.dir / 'config.yaml')
            self.saved_cfg = read_yaml(self.dir / 'config.yaml')[0]
        else:
            if not args.config:
                raise ConfigError('--config is required (or --resume a run)')
            self.config_path = Path(args.config)
            self.ckpt = None
            name = self.config_path.stem if args.name is None else args.name
            check_name(name)
            self.dir = Path(args.save_dir) / name
            if is_rank_zero() and not self.looking and not self.reopen:
                check_new_folder(self.dir, args.save_dir)
        self.provenance = Provenance()
        self.cfg = load_config(self.config_path, args.overrides, args.seed, self.provenance)
        if 'seed' not in self.cfg:
            self.cfg['seed'] = 0
            self.provenance.set(('seed',), 0, 'the default')
        if 'search' in self.cfg:
            raise ConfigError('a sweep config; run it with tune.py (or leave the sweep out '
                              'with ~search)', key='search', file=shown(self.config_path))
        self.gpus = parse_gpus(args.gpu)
        if self.resuming and is_rank_zero() and not self.looking:
            check_writable(self.dir)

    def blamed(self):
        """A ConfigError raised inside names what set the value: a file's line, an override."""
        return self.provenance.blamed(shown(self.config_path))

    def print_config(self, explain=None):
        """--print-config: the resolved config; --explain KEY: where KEY's value came from."""
        if not explain:
            print(yaml.safe_dump(self.cfg, sort_keys=False), end='')
        for key in explain or []:
            with at_key(None, file=shown(self.config_path)):
                print('\n'.join(self.provenance.explain(self.cfg, key)))

    def create(self, write_config=True):
        """Make (or reopen, on resume) the run folder: config.yaml, src/, log.txt. Rank 0 only.
        `write_config=False` leaves config.yaml to write_config(), once every rank has read
        it (a resumed run's ranks read the run's config.yaml before it is rewritten). A new
        run folder is made whole under a temporary name and renamed into place: a failure
        midway (a full disk) leaves no half a folder that `--resume auto` would train in."""
        self.stamp = time.strftime('%Y-%m-%d %H:%M:%S')
        verb = 'restarted (no checkpoint yet)' if self.reopen and self.started_before else \
            'resumed' if self.resuming and not self.reopen else 'started'
        line = f'{verb} {self.stamp}: {self.command}'
        with disk_errors():
            if self.resuming:
                remove_stale_temporaries(self.dir)
                if not (self.dir / 'src').exists():  # died before its first save, or Ray's
                    build_then_rename(self.dir / 'src', snapshot_code)
                if not (self.dir / ENV_FILE).exists():
                    write_environment(self.dir, self.command)
                if write_config:
                    self.write_config()
                self.log(line)
                return

            def fill(folder):
                snapshot_code(folder / 'src')
                write_environment(folder, self.command)
                self.write_config(folder)
                append_log(folder, line)
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            build_then_rename(self.dir, fill)

    def write_config(self, folder=None):
        """config.yaml: the resolved config, after the commands that made it as comments."""
        folder = Path(folder or self.dir)
        history = ''
        old = folder / 'config.yaml'
        if old.is_file():
            self.config_before = (old.read_text(), last_saved(folder))  # for undo_config
            history = ''.join(l for l in self.config_before[0].splitlines(True)
                              if l.startswith('# '))
        text = history + f'# {self.stamp}: {self.command}\n' + \
            yaml.safe_dump(self.cfg, sort_keys=False)
        write_text(folder / 'config.yaml', text)

    def undo_config(self):
        """After an error ended a resumed run before it saved a checkpoint: config.yaml back
        to the config its last.ckpt was trained with, so that a plain --resume goes on as
        before (an override that broke the run, `frequency: 0`, is not kept). Rank 0."""
        before = self.config_before
        if before is None:
            return
        writer.settle()  # a save still on its way counts (a failed one saved nothing)
        if last_saved(self.dir) == before[1]:
            write_text(self.dir / 'config.yaml', before[0])
            self.log('config.yaml restored: the resume failed before it saved a checkpoint')

    def announce(self):
        print(f'run folder: {self.dir}\nsee it in TensorBoard: {tensorboard()} --logdir '
              f'{shown(self.dir.parent)}')

    def log(self, line):
        append_log(self.dir, line)


def last_saved(folder):
    """What tells one ckpt/last.ckpt from the next (None: none yet)."""
    try:
        stat = (Path(folder) / 'ckpt' / 'last.ckpt').stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def check_new_folder(folder, save_dir):
    """A new run's folder, before anything is built: not there yet (not even as a dangling
    symlink), under a --save-dir that is a folder one can write in."""
    save = Path(save_dir)
    if save.is_symlink() and not save.exists():
        raise ConfigError(f'--save-dir {save_dir}: a symlink to {os.readlink(save)}, which does '
                          'not exist')
    if save.exists() and not save.is_dir():
        raise ConfigError(f'--save-dir {save_dir}: is a file, not a folder')
    if folder.is_symlink() and not folder.exists():
        raise ConfigError(f'run folder {folder} is a symlink to {os.readlink(folder)}, which '
                          'does not exist; remove the link, or pick another --name')
    if folder.exists():
        raise ConfigError(f'run folder {folder} already exists; continue it with '
                          f'--resume {folder}, or pick another --name')
    check_writable(folder)


def check_writable(folder):
    """The folder (or the nearest one above it that exists) must take new files."""
    existing = next(p for p in [Path(folder), *Path(folder).absolute().parents] if p.exists())
    if not existing.is_dir():
        raise ConfigError(f'cannot make {folder}: {existing} is a file, not a folder')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f'cannot write in {existing}: a read-only folder or no permission')


def build_then_rename(path, fill):
    """fill(tmp) makes the folder `path` whole under a temporary name beside it, which is then
    renamed into place; a failure removes it. Of two processes making one path at once, the
    second gets a one-line refusal."""
    path = Path(path)
    remove_abandoned(path)
    tmp = path.with_name(f'.{path.name}.tmp-{HOST}-{os.getpid()}')
    try:
        tmp.mkdir()
        fill(tmp)
        if path.exists() or path.is_symlink():  # rename would replace an empty folder
            raise FileExistsError(errno.EEXIST, 'exists', str(path))
        os.rename(tmp, path)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise ConfigError(f'run folder {path} already exists (another run made it just '
                              'now); pick another --name') from None
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


HOST = socket.gethostname().replace('-', '_')


def remove_abandoned(path):
    """The temporary folders of `path` that a killed process of this machine left (a folder of
    a process elsewhere on a shared disk may still be in the making)."""
    for tmp in Path(path).parent.glob(f'.{Path(path).name}.tmp-{HOST}-*'):
        pid = tmp.name.rsplit('-', 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def remove_stale_temporaries(run_dir):
    """What a killed write left in a run folder: `.NAME.tmp` files of replace_atomically and
    `.src.tmp-HOST-PID` folders of build_then_rename. Rank 0 alone writes, so none is in use."""
    run_dir = Path(run_dir)
    for tmp in [*run_dir.glob('.*.tmp'), *run_dir.glob('ckpt/.*.tmp'),
                *run_dir.glob('.*.tmp-*')]:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink()


def tested_line(ckpt, global_step):
    """log.txt's record of what the test split was evaluated with; plot.py reads its step."""
    return f"tested {ckpt or 'the weights at the end of training'} at global_step {global_step}"


def append_log(run_dir, line):
    """One line at the end of the run's log.txt."""
    with open(Path(run_dir) / 'log.txt', 'a') as f:
        f.write(line + '\n')


def parse_gpus(text):
    if text is None or text == '':
        return []
    try:
        ids = [int(t) for t in str(text).split(',')]
    except ValueError:
        raise ConfigError(f"--gpu must be comma-separated integers like 0,1, but got '{text}'") \
            from None
    if len(set(ids)) < len(ids):  # two processes on one GPU: each would hold a copy
        raise ConfigError(f'--gpu {text}: a GPU named twice')
    import torch
    count = torch.cuda.device_count()
    if count == 0:
        raise ConfigError(f'--gpu {text}: this machine has no CUDA GPU; leave out --gpu to '
                          'train on the CPU')
    bad = [i for i in ids if not 0 <= i < count]
    if bad:
        raise ConfigError(f'--gpu {text}: no GPU {bad[0]}; this machine has GPUs 0-{count - 1}')
    return ids


def git(*cmd):
    """The output of a git command in the project, or None (no git, or no repository)."""
    try:
        out = subprocess.run(['git', '-C', str(ROOT), *cmd], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout if out.returncode == 0 else None


def snapshot_code(dst):
    """Copy the project's code (git-tracked and untracked-not-ignored files, never load/ or
    save/) to dst, with the git commit and diff when there is a repository."""
    listed = git('ls-files', '--cached', '--others', '--exclude-standard', '-z')
    if listed is not None:
        files = [f for f in listed.split('\0') if f]
    else:
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob('*') if p.is_file()
                 and not any(part.startswith(('.', '__pycache__')) for part in
                             p.relative_to(ROOT).parts)]
    for rel in files:
        src = ROOT / rel
        if rel.split('/')[0] in ('load', 'save') or not src.is_file() or \
                src.stat().st_size > 5 * 2**20:  # data and weights are not code
            continue
        if src.is_symlink() and not src.resolve().is_relative_to(ROOT.resolve()):
            continue  # a link out of the project (a dataset, a home folder) is not its code
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)
    dst.mkdir(parents=True, exist_ok=True)
    if not write_git_state(dst) and os.environ.get('RUNYARD_GIT_STATE'):
        # a copy of the code without .git (a Ray cluster's working_dir): what tune.py saw
        for name in GIT_FILES:
            src = Path(os.environ['RUNYARD_GIT_STATE']) / name
            if src.is_file():
                shutil.copy2(src, dst / name)


GIT_FILES = ('git_commit.txt', 'git_diff.patch')


def write_git_state(dst):
    """git_commit.txt and git_diff.patch of the project into dst; False outside a repository."""
    commit = git('rev-parse', 'HEAD')
    if commit:
        Path(dst).mkdir(parents=True, exist_ok=True)
        (Path(dst) / 'git_commit.txt').write_text(commit)
        (Path(dst) / 'git_diff.patch').write_text(git('diff', 'HEAD') or '')
    return bool(commit)


def tensorboard():
    """How to start this interpreter's TensorBoard from this shell: `tensorboard` when it is the
    one on PATH (an activated venv), else its path (`make demo` runs .venv/bin/python)."""
    beside = Path(sys.executable).parent / 'tensorboard'
    on_path = shutil.which('tensorboard')
    if not beside.is_file() or (on_path and Path(on_path).resolve() == beside.resolve()):
        return 'tensorboard'
    return shown(beside)


def format_duration(seconds):
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s' if m else f'{s}s'


def eta_line(epoch, max_epochs, metrics, elapsed, epochs_done, steps_done=0, steps_left=None):
    """One progress line per epoch: `epoch 3/20  train/loss 0.41  val/acc 0.93  ...  ETA 12s`.
    The ETA is the sooner end of the epochs' (max_epochs) and the steps' (max_steps: the
    `steps_left`, at the pace of the `steps_done` in this process)."""
    shown = '  '.join(f'{k} {v:.4g}' for k, v in sorted(metrics.items()))
    ends = []
    if max_epochs and max_epochs > 0:
        ends.append(elapsed / max(epochs_done, 1) * (max_epochs - epoch))
    if steps_left is not None and steps_done > 0:
        ends.append(elapsed / steps_done * steps_left)
    total = max_epochs if max_epochs and max_epochs > 0 else '?'
    eta = format_duration(min(ends)) if ends else '?'
    return f'epoch {epoch}/{total}  {shown}  elapsed {format_duration(elapsed)}  ETA {eta}'


def describe(value):
    """`float32[64, 1, 8, 8]` for a tensor; tuples, lists and dicts of them likewise."""
    if hasattr(value, 'shape') and hasattr(value, 'dtype'):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    if isinstance(value, (list, tuple)):
        return '(' + ', '.join(describe(v) for v in value) + ')'
    if isinstance(value, dict):
        return '{' + ', '.join(f'{k}: {describe(v)}' for k, v in value.items()) + '}'
    return type(value).__name__


def check_report(module, device, batches, losses, parts):
    """What --check prints: the model's size, a batch of each split, the losses of the one
    train and one val step, and what else was built."""
    n_params = sum(p.numel() for p in module.parameters())
    n_train = sum(p.numel() for p in module.parameters() if p.requires_grad)
    lines = [f'model: {n_params:,} parameters ({n_train:,} trainable), on {device}']
    lines += [f'{split} batch: {describe(batch)}' for split, batch in batches.items()]
    lines += [f'{name}: {value}' for name, value in parts.items()]
    lines.append('losses: ' + '  '.join(f'{k} {v:.4g}' for k, v in losses.items()))
    ran = ' and '.join(f'one {split}' for split in batches)
    lines.append(f'check passed: {ran} batch ran; nothing was written')
    print('\n'.join(lines))
