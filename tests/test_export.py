"""export.py: each format, run by its own runtime, gives the checkpoint's outputs on a val batch
of the run's data, for a classification and a regression config."""
import json

import numpy as np
import pytest
import torch

import export
import models
import utils
from conftest import SHRINK


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    from conftest import ENTRYPOINTS
    save = tmp_path_factory.mktemp('save')
    for config in ('digits', 'diabetes-regression'):
        utils.run_cli(ENTRYPOINTS['train.py'], ['--config', f'configs/{config}.yaml', *SHRINK,
                                                '+test=false', '--save-dir', str(save),
                                                '--name', config])
    return save


def run_exported(fmt, path, x):
    if fmt == 'onnx':
        import onnxruntime
        session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        return torch.from_numpy(session.run(None, {'input': x.numpy()})[0])
    if fmt == 'torchscript':
        return torch.jit.load(str(path))(x)
    return torch.export.load(str(path)).module()(x)


@pytest.mark.parametrize('fmt', ['onnx', 'torchscript', 'export'])
@pytest.mark.parametrize('config, shape', [('digits', [1, 8, 8]),
                                           ('diabetes-regression', [10])])
def test_exported_model_gives_the_checkpoints_outputs(runs, config, shape, fmt, capsys):
    run = runs / config
    utils.run_cli(export.main, ['--run', str(run), '--ckpt', 'last', '--format', fmt])
    path = run / 'export' / f'model{export.SUFFIXES[fmt]}'
    assert f'as {fmt}: {path}' in capsys.readouterr().out
    record = json.loads(path.with_name(path.name + '.json').read_text())
    assert record['input']['shape'] == ['batch', *shape]
    assert 'post_transforms' in record['normalisation']
    cfg = utils.load_config(run / 'config.yaml')
    _, x = export.val_batch(cfg)  # a whole val batch: not the example's batch size
    with torch.no_grad():
        expected = models.load_task(run / 'ckpt' / 'last.ckpt').eval()(x)
        got = run_exported(fmt, path, x)
    assert len(x) > 2 and got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5, rtol=0)


def test_out_over_a_runs_checkpoint_is_refused(runs, capsys):
    run = runs / 'digits'
    with pytest.raises(SystemExit) as info:
        utils.run_cli(export.main, ['--run', str(run), '--out', str(run / 'config.yaml')])
    assert info.value.code == 2
    assert 'would overwrite config.yaml' in capsys.readouterr().err
