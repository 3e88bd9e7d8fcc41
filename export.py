"""Export a run's model for inference outside runyard: ONNX, TorchScript or torch.export.

    python export.py --run save/NAME [--ckpt best|last|FILE] [--format onnx|torchscript|export]
                     [--out FILE]

The exported function is the task's forward (a classifier's logits, a regressor's outputs) on
inputs as the model sees them: after the data's transforms, normalisation included. Its input
shape comes from a val batch of the run's own data (the batch size stays free), and
<out>.json records it with the checkpoint, the output's shape and the normalisation that
inputs need first (the data module's `post` transforms, and what its docstring says of it).
Default --out: save/NAME/export/model.onnx, model.torchscript.pt or model.pt2.
"""
import argparse
import inspect
import json
import sys
from pathlib import Path

import torch

import datasets
import models
import utils
from test import choose_checkpoint, open_run

SUFFIXES = {'onnx': '.onnx', 'torchscript': '.torchscript.pt', 'export': '.pt2'}


def parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--run', required=True, metavar='RUN_DIR', help='the run folder, save/NAME')
    p.add_argument('--ckpt', help='last, best or a .ckpt file (default: as test.py: best when '
                                  'the run monitored a metric, else last)')
    p.add_argument('--format', default='onnx', choices=list(SUFFIXES),
                   help='onnx (onnxruntime), torchscript (torch.jit.load) or export '
                        '(torch.export.load); default onnx')
    p.add_argument('--out', help='the exported file (default: RUN_DIR/export/model.<format>)')
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    return p


def val_batch(cfg):
    """The data module and one batch of model inputs of its val split (the test split when
    val is empty), as training saw them."""
    with utils.at_key('data_module'):
        data = datasets.make(cfg['data_module'])
    data.setup()
    if not len(data.splits['val']) and not len(data.splits['test']):
        raise utils.ConfigError('its val and test splits are empty (val_fraction: 0, as a GAN '
                                'has): no batch to trace the model with',
                                key='data_module.args')
    split = 'val' if len(data.splits['val']) else 'test'
    loader = data.val_dataloader() if split == 'val' else data.test_dataloader()
    x = next(iter(loader))
    return data, x[0] if isinstance(x, (list, tuple)) else x


def normalisation(cfg, data):
    """What an input needs before the model: the `post` transforms and the data's own words."""
    given = (cfg['data_module'].get('args') or {}).get('transforms') or {}
    post = given.get('post', type(data).default_transforms.get('post', []))
    return {'post_transforms': post,
            'data_module': inspect.cleandoc(type(data).__doc__ or '').split('\n\n')[0]}


def export(task, x, fmt, out):
    batch = torch.export.Dim('batch', min=1)  # any batch size, not the example's
    if fmt == 'onnx':  # torch.export's exporter (onnxscript), torch's default since 2.9
        torch.onnx.export(task, (x,), str(out), input_names=['input'], output_names=['output'],
                          dynamic_shapes=({0: batch},), dynamo=True, external_data=False,
                          verbose=False)
    elif fmt == 'torchscript':
        torch.jit.trace(task, x).save(str(out))
    else:
        program = torch.export.export(task, (x,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(out))


def main(argv):
    args = parser().parse_args(argv)
    run_dir, config_path, cfg = open_run(args.run)
    ckpt = choose_checkpoint(run_dir, cfg, args.ckpt)
    out = Path(args.out or run_dir / 'export' / f'model{SUFFIXES[args.format]}')
    utils.check_output(out, ['export/*'], '--out')
    task = models.load_task(ckpt, f'--ckpt {args.ckpt or ckpt}').eval()
    with utils.at_key(None, file=config_path):
        data, x = val_batch(cfg)
    x = x[:2].cpu()  # a small example: the batch size is left free
    with torch.no_grad():
        y = task(x)
    out.parent.mkdir(parents=True, exist_ok=True)
    with utils.disk_errors():
        export(task, x, args.format, out)
    record = {'run': str(run_dir), 'checkpoint': str(ckpt), 'format': args.format,
              'input': {'shape': ['batch', *x.shape[1:]], 'dtype': str(x.dtype).split('.')[-1]},
              'output': {'shape': ['batch', *y.shape[1:]], 'of': f'{type(task).__name__}.forward'},
              'normalisation': normalisation(cfg, data)}
    utils.write_text(out.with_name(out.name + '.json'), json.dumps(record, indent=1) + '\n')
    print(f'exported {ckpt} as {args.format}: {out} (input {record["input"]["shape"]}; '
          f'what it expects: {out.name}.json)')


if __name__ == '__main__':
    utils.run_entrypoint(main)
