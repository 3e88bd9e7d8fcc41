"""What a run logs besides checkpoints: metrics.csv, the config in TensorBoard's HParams view,
and which library warnings to hide."""
import csv
import io
import logging
import os
import warnings
from pathlib import Path

from .run import disk_errors, replace_atomically


def hide_upstream_warnings():
    """Warnings that libraries raise about each other's code, once per run: nothing a user can
    act on (Lightning calls a torch API that torch deprecated)."""
    warnings.filterwarnings('ignore', message=r'`isinstance\(treespec, LeafSpec\)` is deprecated')
    for name in ('pytorch_lightning.utilities.rank_zero', 'lightning.pytorch.utilities.rank_zero'):
        # Lightning's advertisement for its cloud logger, on every Trainer made
        logging.getLogger(name).addFilter(lambda record: 'litlogger' not in str(record.msg))


def metrics_csv_path(run_dir):
    return Path(run_dir) / 'metrics.csv'


# metrics.csv files this process wrote last: {path: (columns, last epoch, (inode, size, mtime))}
_WRITTEN = {}


def record_metrics(path, epoch, step, metrics):
    """Put one epoch's metrics into a metrics.csv of a row per epoch and a column per metric.
    A new last epoch with no new metric is appended as one line, in one write (a kill leaves
    whole lines); anything else (the first write of a process, an epoch that a resumed run
    redoes, a metric first seen late, which gets a column empty above) rewrites the file whole,
    atomically. So a long run does not read and rewrite its whole history every epoch."""
    path = Path(path)
    row = {**metrics, 'epoch': epoch, 'step': step}
    columns, last, seen = _WRITTEN.get(path, (None, None, None))
    try:
        stat = path.stat()
    except FileNotFoundError:
        stat = None
    if columns and stat and seen == (stat.st_ino, stat.st_size, stat.st_mtime_ns) and \
            epoch > last and set(row) <= set(columns):
        append_whole(path, csv_line(columns, row))
    else:
        rows = {}
        if stat:
            with open(path, newline='') as f:
                rows = {int(r['epoch']): r for r in csv.DictReader(f)}
        rows.setdefault(epoch, {}).update(row)
        columns = ['epoch', 'step'] + sorted({k for r in rows.values() for k in r} -
                                             {'epoch', 'step'})

        def write(tmp):
            with open(tmp, 'w', newline='') as f:
                writer = csv.DictWriter(f, columns, restval='')
                writer.writeheader()
                writer.writerows(rows[e] for e in sorted(rows))
        replace_atomically(path, write)
        last = max(rows)
    stat = path.stat()
    _WRITTEN[path] = (columns, max(last, epoch), (stat.st_ino, stat.st_size, stat.st_mtime_ns))


def csv_line(columns, row):
    """`row` ({column: value}) as one CSV line of those columns, empty where it has none."""
    line = io.StringIO()
    csv.DictWriter(line, columns, restval='').writerow(row)
    return line.getvalue()


def append_whole(path, text):
    """`text` at the end of the file `path`, in one write; a write that fails (a full disk)
    leaves no part of it for the next read."""
    size = os.path.getsize(path)
    try:
        with disk_errors(path), open(path, 'a', newline='') as f:
            f.write(text)
    except BaseException:
        os.truncate(path, size)
        raise


def flat_config(cfg, prefix=''):
    """{'train_wrapper.args.optim_spec.args.lr': 0.01, ...}: the config's leaves by dotted path,
    lists as text; what TensorBoard's HParams view shows of a run."""
    flat = {}
    for key, value in cfg.items():
        path = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(flat_config(value, path + '.'))
        else:
            flat[path] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def write_hparams(writer, cfg, metric_names):
    """The run's config in TensorBoard's HParams view, its columns `metric_names` (read from the
    run's scalars of those tags). `writer` is a torch.utils.tensorboard or a tensorboardX
    SummaryWriter; their add_hparams would start a separate run in a subfolder."""
    if type(writer).__module__.startswith('tensorboardX'):
        from tensorboardX.summary import hparams
    else:
        from torch.utils.tensorboard.summary import hparams
    summaries = hparams(flat_config(cfg), {name: float('nan') for name in metric_names})
    file_writer = writer._get_file_writer()
    for summary in summaries:
        file_writer.add_summary(summary)


def tensorboard_writer(logger_list):
    """The SummaryWriter of the TensorBoardLogger among Lightning's `logger_list`, or None (the
    config's `loggers:` has no tensorboard, or it is not first)."""
    from pytorch_lightning.loggers import TensorBoardLogger
    return next((lg.experiment for lg in logger_list if isinstance(lg, TensorBoardLogger)), None)


def write_images(images, writer, run_dir, epoch):
    """A task's epoch_images(): each to TensorBoard (IMAGES tab) at step `epoch` (unless
    `writer` is None) and to <run>/<name>/epoch=EEE.png, small images enlarged to >= 512 px
    with their pixels sharp."""
    import torchvision
    for name, grid in images.items():
        if writer is not None:
            writer.add_image(name, grid, epoch)
        path = Path(run_dir) / name / f'epoch={epoch:03d}.png'
        path.parent.mkdir(exist_ok=True)
        scale = -(-512 // grid.shape[-1])
        torchvision.utils.save_image(
            grid.repeat_interleave(scale, dim=-1).repeat_interleave(scale, dim=-2), path)

def write_texts(texts, writer, run_dir, epoch):
    """A task's epoch_texts(): each to TensorBoard (TEXT tab, as a code block: spaces and line
    breaks kept) at step `epoch` (unless `writer` is None), and to log.txt as one line."""
    from .run import append_log  # run.py imports this module
    for name, text in texts.items():
        if writer is not None:
            writer.add_text(name, '```\n' + text.replace('```', '` ` `') + '\n```', epoch)
        append_log(run_dir, f'epoch {epoch} {name}: {text!r}')
