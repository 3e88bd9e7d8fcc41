"""Evaluate a finished run, or predict with it, from its run folder alone: its config.yaml
(already resolved) and one of its checkpoints; configs/ is never read. Works for runs of
train_pl.py and of train.py.

    python test.py --run save/NAME [--ckpt last|best|PATH] [--split test|val] [--gpu 0]
    python test.py --run save/NAME --predict IMAGES_DIR|INPUTS.pt [--out FILE.csv]

Evaluation runs the Lightning Trainer (trainer.test or trainer.validate) with the run's
precision, limit_val_batches/limit_test_batches and deterministic, prints the metrics and
writes save/NAME/eval/<split>.json: {run, checkpoint, epoch, global_step, split, metrics}
(`epoch` is the checkpoint's, counted from 0 as in its file name `epoch=E-step=S.ckpt`).

Prediction runs the task's predict_step on a folder of images or on a tensor file, and writes
a CSV (default save/NAME/eval/predictions.csv): the input (file name or index), then the task's
columns: for classification the predicted class, its probability and one probability column per
class; for regression the predicted value(s).
"""
import argparse
import csv
import json
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

import datasets
import models
import utils
from datasets.lightning import LightningData
from models.lightning import TaskModule

utils.hide_upstream_warnings()

# The trainer_params that change what an evaluation computes; the rest are about training.
EVAL_PARAMS = ('precision', 'limit_val_batches', 'limit_test_batches', 'deterministic')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp')


def parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--run', required=True, metavar='RUN_DIR', help='the run folder, save/NAME')
    p.add_argument('--ckpt', help='last, best (by the checkpoint: section\'s monitor) or a '
                                  '.ckpt file (default: best when the run monitored a metric, '
                                  'else last)')
    p.add_argument('--split', default='test', choices=['test', 'val'],
                   help='the data module\'s split to evaluate (default: test)')
    p.add_argument('--gpu', help='one GPU id, e.g. 0 (default: CPU)')
    p.add_argument('--predict', metavar='INPUT',
                   help='predict instead of evaluating. INPUT is a folder of images (read with '
                        'PIL, made float tensors in [0, 1], C x H x W, as the to_tensor transform '
                        'does, then put through the run\'s test-split transforms: converting '
                        'colour or size to what the model expects is their job, see '
                        'data_module.args.transforms in the run\'s config.yaml) or a .pt file '
                        'holding a float tensor N x C x H x W of model-ready inputs')
    p.add_argument('--out', help='the predictions CSV (default: RUN_DIR/eval/predictions.csv)')
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    return p


def open_run(target):
    """(run folder, config path, config) of --run."""
    run_dir = Path(target)
    if not run_dir.is_dir():
        raise utils.ConfigError(f'--run {target}: no such run folder')
    config_path = run_dir / 'config.yaml'
    if not config_path.is_file():
        raise utils.ConfigError(f'--run {target}: not a run folder (no config.yaml in it)')
    return run_dir, config_path, utils.load_config(config_path)


def choose_checkpoint(run_dir, cfg, word):
    """--ckpt last, best or a file (also a file name inside the run's ckpt/) -> its path."""
    monitor = (cfg.get('checkpoint') or {}).get('monitor')
    flag = f'--ckpt {word}' if word else f'--run {run_dir}'
    word = word or ('best' if monitor else 'last')
    last = run_dir / 'ckpt' / 'last.ckpt'
    if word in ('last', 'best') and not last.is_file():
        raise utils.ConfigError(f'{flag}: no checkpoint at {last}')
    if word == 'last':
        return last
    if word == 'best':
        if not monitor:
            raise utils.ConfigError(f'{flag}: {run_dir} monitored no metric (its checkpoint: '
                                    'section has no monitor), so it has no best checkpoint; use '
                                    '--ckpt last')
        best = utils.best_checkpoint(utils.load_checkpoint(last, flag), run_dir, monitor)
        if best is None or not best.is_file():
            raise utils.ConfigError(f'{flag}: {run_dir} has no best checkpoint by {monitor} '
                                    f'({best or "none recorded"}); use --ckpt last')
        return best
    for path in (Path(word), run_dir / 'ckpt' / word):
        if path.is_file():
            return path
    if Path(word).suffix or '/' in word:
        raise utils.ConfigError(f'--ckpt {word}: no such checkpoint file')
    raise utils.ConfigError(f"--ckpt must be last, best or a checkpoint file, but got '{word}'"
                            f"{utils.close_matches(word, ['last', 'best'])}")


def build(cfg, config_path, predicting):
    """The data module and the task of the run's config, in the Lightning adapter."""
    with utils.at_key(None, file=config_path):
        with utils.at_key('data_module'):
            data = datasets.make(cfg['data_module'])
        with utils.at_key('train_wrapper'):
            # init_from is how training started; the checkpoint's weights replace it anyway,
            # and the run it names may be gone.
            spec = utils.without_init_from(cfg['train_wrapper'])
            task = models.make_task(spec)
            if not predicting and not task.validates:
                raise utils.ConfigError(f"the {cfg['train_wrapper']['name']!r} task has no "
                                        'validation_step: nothing for test.py to evaluate',
                                        key='name')
    return data, TaskModule(spec, task=task)


def load_weights(task, state, ckpt, config_path):
    try:
        task.load_state_dict(state['state_dict'])
    except RuntimeError as e:  # another model's checkpoint: Lightning's layout, other keys
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise utils.ConfigError(f'--ckpt {ckpt}: its weights do not fit the model of '
                                f'{config_path} ({lines[1] if len(lines) > 1 else lines[0]})') \
            from None


def make_trainer(cfg, gpus):
    params = {k: v for k, v in (cfg.get('trainer_params') or {}).items() if k in EVAL_PARAMS}
    device = {'accelerator': 'gpu', 'devices': gpus} if gpus else \
        {'accelerator': 'cpu', 'devices': 1}
    try:
        return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, **device, **params)
    except ValueError as e:
        raise utils.ConfigError(str(e).splitlines()[0], key='trainer_params') from None


def read_inputs(target, data):
    """(names, float tensor N x ...) of --predict: the images of a folder, through the test
    split's transforms (to_tensor first, so a dataset whose samples are tensors already, like
    digits, gets what its pipeline expects), or a .pt tensor of model-ready inputs."""
    path = Path(target)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise utils.ConfigError(f'--predict {target}: no images in it '
                                    f"({', '.join(IMAGE_SUFFIXES)})")
        from PIL import Image

        from datasets import transforms
        steps = [transforms.ToTensor(), data.transforms.get('test')]  # None: no test transforms
        pipeline = transforms.compose([step for step in steps if step])
        inputs = []
        for file in files:
            try:
                with Image.open(file) as image:
                    inputs.append(pipeline(image))
            except (OSError, TypeError, ValueError, RuntimeError) as e:  # unreadable, or the
                # transforms refuse it (3-channel Normalize on a grayscale image)
                raise utils.ConfigError(f'--predict {target}: cannot read or transform '
                                        f'{file.name} ({type(e).__name__}: '
                                        f'{(str(e).splitlines() or [""])[0]})') from None
        shapes = sorted({tuple(x.shape) for x in inputs})
        if len(shapes) > 1:
            raise utils.ConfigError(f'--predict {target}: the images differ in shape after the '
                                    f"transforms ({', '.join(str(list(s)) for s in shapes)}); "
                                    "give the run's test transforms a Resize")
        return [file.name for file in files], torch.stack(inputs)
    if path.suffix != '.pt':
        raise utils.ConfigError(f'--predict {target}: no such folder of images or .pt file')
    if not path.is_file():
        raise utils.ConfigError(f'--predict {target}: no such file')
    try:
        x = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise utils.ConfigError(f'--predict {target}: cannot load it ({type(e).__name__})') \
            from None
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise utils.ConfigError(f'--predict {target}: must hold a float tensor N x C x H x W, '
                                f'but got {utils.describe(x)}')
    return [str(i) for i in range(len(x))], x


def evaluate(trainer, module, data, cfg, split):
    run = trainer.test if split == 'test' else trainer.validate
    results = run(module, datamodule=LightningData(data, cfg['seed']), verbose=False)
    return {k: float(v) for k, v in sorted(results[0].items())}


def predict(trainer, module, x, batch_size, target):
    loader = DataLoader(TensorDataset(x), batch_size=batch_size)
    try:
        return torch.cat(trainer.predict(module, dataloaders=loader)).float()
    except RuntimeError as e:  # inputs of another shape than the model takes
        raise utils.ConfigError(f'--predict {target}: the model does not take inputs '
                                f'{utils.describe(x)} ({(str(e).splitlines() or [""])[0]})') \
            from None


# test.py's own files in a run folder, the only ones of it that it writes over
OWN_OUTPUTS = ('eval/*.csv', 'eval/*.json')


def write_predictions(path, names, task, outputs):
    header, rows = task.prediction_table(outputs)

    def write(tmp):
        with open(tmp, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['input', *header])
            writer.writerows([name, *row] for name, row in zip(names, rows))
    with utils.disk_errors():
        path.parent.mkdir(parents=True, exist_ok=True)
    utils.replace_atomically(path, write)  # a new file: never written through a hard link


def main(argv):
    args = parser().parse_args(argv)
    if args.out and not args.predict:
        raise utils.ConfigError('--out names the predictions CSV: it goes with --predict')
    if args.out:  # before anything runs: never over a checkpoint of a run folder
        utils.check_output(args.out, OWN_OUTPUTS, '--out')
    gpus = utils.parse_gpus(args.gpu)
    if len(gpus) > 1:
        raise utils.ConfigError(f'--gpu takes one GPU, but got {args.gpu}')
    run_dir, config_path, cfg = open_run(args.run)
    for difference in utils.environment_differences(run_dir, utils.ROOT):
        print(f'warning: {difference} (its env.txt): results may differ', file=sys.stderr)
    ckpt = choose_checkpoint(run_dir, cfg, args.ckpt)
    state = utils.load_checkpoint(ckpt, f'--ckpt {args.ckpt}' if args.ckpt else f'--run {run_dir}')
    pl.seed_everything(cfg['seed'], verbose=False)

    # Everything is built and checked before anything is written.
    data, module = build(cfg, config_path, bool(args.predict))
    load_weights(module.task, state, ckpt, config_path)
    if args.predict:  # its mistakes before the Trainer's lines about the machine
        out = utils.check_output(args.out or run_dir / 'eval' / 'predictions.csv', OWN_OUTPUTS,
                                 '--out')
        names, x = read_inputs(args.predict, data)
    with utils.at_key(None, file=config_path):
        trainer = make_trainer(cfg, gpus)
    where = f"{ckpt} (epoch={state.get('epoch')}, global_step={state.get('global_step')})"

    if args.predict:
        outputs = predict(trainer, module, x, data.loader_settings['test']['batch_size'],
                          args.predict)
        write_predictions(out, names, module.task, outputs)
        print(f'{where}: {len(names)} predictions written to {out}')
        return

    metrics = evaluate(trainer, module, data, cfg, args.split)
    width = max(map(len, ['metric', *metrics]))
    print(f'{where}, split {args.split}:')
    print('\n'.join(f'  {name:<{width}}  {value}' for name, value in
                    [('metric', 'value'), *((k, f'{v:.6g}') for k, v in metrics.items())]))
    report = {'run': str(run_dir), 'checkpoint': str(ckpt), 'epoch': state.get('epoch'),
              'global_step': state.get('global_step'), 'split': args.split, 'metrics': metrics}
    out = run_dir / 'eval' / f'{args.split}.json'
    with utils.disk_errors():
        out.parent.mkdir(exist_ok=True)
    utils.write_text(out, json.dumps(report, indent=2) + '\n')
    print(f'written to {out}')


if __name__ == '__main__':
    utils.run_entrypoint(main)
