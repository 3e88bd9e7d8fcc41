"""Plot the curves of one or several runs into a PNG and print a table comparing them.

    python plot.py save/NAME [save/OTHER ...] [--out FILE.png] [--metrics val/acc loss ...]

Reads every events.out.tfevents.* in each run folder (a resumed run has several; a step
logged twice keeps its latest value), plus its config.yaml and log.txt. Draws one subplot per
metric (train/loss, val/loss and test/loss share the `loss` plot) against the training step,
one colour per run. The PNG goes to --out, by default save/NAME/curves.png for one run and,
for several, compare-NAME-vs-OTHER.png beside the first run's folder (in save/, which git
ignores: a file in the repository root would be copied into every later run's src/). Nothing
else is written. The table has one row per run: epochs and steps done, the final and the best
value of each val/ metric with the step it was reached at, the final value of each test/ one.
"""
import argparse
import re
import sys
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no backend or display to choose
from matplotlib.lines import Line2D
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import utils

SKIPPED_TAGS = {'epoch', 'hp_metric'}  # Lightning's bookkeeping, not curves
STYLES = {'train': dict(lw=1, alpha=0.5), 'val': dict(lw=2, marker='o', ms=3),
          'test': dict(ls='none', marker='*', ms=12)}  # test: one point per evaluation


def parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('runs', nargs='+', metavar='RUN_DIR', help='run folders, e.g. save/NAME')
    p.add_argument('--out', metavar='FILE.png', help='the PNG to write (default: RUN_DIR/curves.png for one run, '
                                 'compare-A-vs-B.png beside the first run for several)')
    p.add_argument('--metrics', nargs='+', metavar='TAG', help='tags to plot and tabulate, e.g. '
                   'val/acc, or a metric name for all its splits, e.g. loss (default: all)')
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    return p


def split(tag):
    return tag.split('/')[0] if '/' in tag else ''


def read_run(path):
    if not path.is_dir():
        raise utils.ConfigError(f'{path}: no such run folder')
    files = sorted(path.glob('events.out.tfevents.*'))
    if not files:
        raise utils.ConfigError(f'{path}: ' + (
            'no TensorBoard event files yet' if (path / 'config.yaml').is_file() else
            'not a run folder (no config.yaml, no events.out.tfevents.*)'))
    latest = {}  # tag -> step -> (wall_time, value)
    for file in files:
        events = EventAccumulator(str(file), size_guidance={'scalars': 0})  # 0: every point
        events.Reload()
        for tag in set(events.Tags()['scalars']) - SKIPPED_TAGS:
            points = latest.setdefault(tag, {})
            for e in events.Scalars(tag):
                if e.step not in points or e.wall_time >= points[e.step][0]:
                    points[e.step] = (e.wall_time, e.value)
    if not latest:
        raise utils.ConfigError(f'{path}: no scalars logged yet')
    scalars = {tag: [(s, v) for s, (_, v) in sorted(p.items())] for tag, p in latest.items()}
    config, log = path / 'config.yaml', path / 'log.txt'
    text = log.read_text() if log.is_file() else ''
    # train.py's events carry no epoch number, but both entrypoints end every epoch with an
    # `epoch N/M ...` line in log.txt
    epochs = re.findall(r'^epoch (\d+)/', text, flags=re.M)
    # the test split is logged after training, but evaluates the checkpoint it names in
    # log.txt (the best one, often): its point goes where that checkpoint's validation is
    # (global_step S is S steps done: the last of them is step S - 1, 0-based)
    tested = re.findall(r'^tested .* at global_step (\d+)$', text, flags=re.M)
    if tested:
        for tag in [t for t in scalars if split(t) == 'test']:
            scalars[tag] = [(max(int(tested[-1]) - 1, 0), scalars[tag][-1][1])]
    # steps are 0-based batch indices in both entrypoints; test/ comes after training
    steps = [s for tag, points in scalars.items() if split(tag) != 'test' for s, _ in points]
    return {'name': path.name, 'scalars': scalars,
            'cfg': utils.load_yaml(config) if config.is_file() else {},
            'epochs': epochs[-1] if epochs else '-', 'steps': 1 + max(steps) if steps else 0}


def pick_tags(runs, wanted):
    available = sorted(set().union(*(r['scalars'] for r in runs)))
    tags = available if not wanted else []
    for name in wanted or []:
        found = [t for t in available if name in (t, t.split('/')[-1])]
        if not found:
            raise utils.ConfigError(f"--metrics {name}: no run logged it"
                                    f"{utils.close_matches(name, available)} "
                                    f"(available: {', '.join(available)})")
        tags += [t for t in found if t not in tags]
    order = list(STYLES)  # train, val, test: the order of a curve's life
    return sorted(tags, key=lambda t: (order.index(split(t)) if split(t) in order else 3, t))


# Curves that are settings, not scores (a learning rate schedule, LearningRateMonitor's
# lr-Adam): no better or worse
SETTINGS = re.compile(r'(^|[/_-])(lr|learning_rate|momentum|weight_decay|epoch)($|[/_-])')
LOWER = ('loss', 'mae', 'mse', 'error')


def panel_title(name, tags, runs):
    """The tags of a panel, and which way is better when the metric is a score."""
    if any(SETTINGS.search(t) for t in tags):
        return ', '.join(tags)
    return f"{', '.join(tags)} ({'lower' if lower_is_better(name, runs) else 'higher'} is better)"


def lower_is_better(tag, runs):
    # the checkpoint's monitor tells (ModelCheckpoint's mode defaults to min), for every split
    # of that metric; otherwise go by the name
    for run in runs:
        checkpoint = run['cfg'].get('checkpoint') or {}
        if str(checkpoint.get('monitor')).split('/')[-1] == tag.split('/')[-1]:
            return checkpoint.get('mode', 'min') == 'min'
    return any(word in tag.split('/')[-1] for word in LOWER)


def draw(runs, tags, out):
    groups = {}  # metric name -> its tags: train/loss, val/loss and test/loss share a plot
    for tag in tags:
        groups.setdefault(tag.split('/')[-1], []).append(tag)
    names = sorted(groups, key=lambda g: (g != 'loss', g))  # loss first, where people look
    ncols = min(len(names), 3)
    nrows = -(-len(names) // ncols)
    fig = Figure(figsize=(5 * ncols + 1.5, 3.8 * nrows), layout='constrained')
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = [f'C{i % 10}' for i in range(len(runs))]
    for ax, name in zip(axes, names):
        values = []
        for run, colour in zip(runs, colours):
            for tag in groups[name]:
                if run['scalars'].get(tag):
                    steps, ys = zip(*run['scalars'][tag])
                    ax.plot(steps, ys, color=colour, **STYLES.get(split(tag), {}))
                    values += ys
        # losses fall by orders of magnitude: on a linear axis the end of training looks flat
        if 'loss' in name and min(values) > 0:
            ax.set_yscale('log')
        ax.set_title(panel_title(name, groups[name], runs))
        ax.set_xlabel('training step')
        ax.grid(True, which='both', alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=c, lw=2, label=r['name']) for r, c in zip(runs, colours)]
    handles += [Line2D([], [], color='grey', label=s, **STYLES[s]) for s in STYLES
                if any(split(t) == s for t in tags)]
    fig.legend(handles=handles, loc='outside right upper')
    # a new file renamed into place: a hard link to the old one keeps its bytes
    utils.replace_atomically(out, lambda tmp: fig.savefig(tmp, dpi=110, format='png'))


def table(runs, tags):
    header = ['run', 'epochs', 'steps']
    rows = [[r['name'], r['epochs'], str(r['steps'])] for r in runs]
    for tag in [t for t in tags if split(t) == 'val']:
        lower = lower_is_better(tag, runs)
        header += [f'{tag} final', f"{tag} {'min' if lower else 'max'} (step)"]
        for run, row in zip(runs, rows):
            points = run['scalars'].get(tag)
            step, best = (min if lower else max)(points, key=lambda p: p[1]) if points else (0, 0)
            row += [f'{points[-1][1]:.4g}', f'{best:.4g} ({step})'] if points else ['-', '-']
    # no best of a test metric: choosing by it would pick a model on the test set
    for tag in [t for t in tags if split(t) == 'test']:
        header.append(tag)
        for run, row in zip(runs, rows):
            points = run['scalars'].get(tag)
            row.append(f'{points[-1][1]:.4g}' if points else '-')
    widths = [max(len(line[i]) for line in [header] + rows) for i in range(len(header))]
    return '\n'.join('  '.join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                               enumerate(zip(line, widths))) for line in [header] + rows)


def default_out(paths):
    if len(paths) == 1:
        return paths[0] / 'curves.png'
    names = [p.name for p in paths] if len(paths) <= 3 else \
        [paths[0].name, f'{len(paths) - 1}-more']  # a file name has at most 255 bytes
    return paths[0].parent / f"compare-{'-vs-'.join(names)}.png"


def main(argv):
    args = parser().parse_args(argv)
    out = Path(args.out) if args.out else default_out([Path(p) for p in args.runs])
    if args.out and out.suffix.lower() != '.png':  # never a run's config.yaml by mistake
        raise utils.ConfigError(f"--out must be a .png file, but got '{out}'")
    if args.out and not out.parent.is_dir():
        raise utils.ConfigError(f'--out {out}: no such folder {out.parent}')
    # its own PNGs may be drawn again; no other file of a run folder (samples/epoch=001.png)
    utils.check_output(out, ('*.png',), '--out' if args.out else 'the curves')
    runs = [read_run(Path(p)) for p in args.runs]
    if len({r['name'] for r in runs}) < len(runs):  # save/a and other/a: tell them apart
        for run, path in zip(runs, args.runs):
            run['name'] = path
    tags = pick_tags(runs, args.metrics)
    draw(runs, tags, out)
    print(table(runs, tags))
    print(f'curves: {out}')


if __name__ == '__main__':
    utils.run_entrypoint(main)
