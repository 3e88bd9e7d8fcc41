"""The README's "Extend it" snippets, as a new user follows them: in a fresh copy of the
project, write each file, run the command before and after the one-word import line edit,
and train for an epoch with both entrypoints."""
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import ROOT, run_command

pytestmark = pytest.mark.slow
SECTION = ROOT.joinpath('README.md').read_text().split('## Extend it')[1].split('\n## ')[0]
FILES = re.findall(r'```python\n# (\S+\.py)\n(.*?)```', SECTION, flags=re.S)
IMPORTS = re.findall(r'Add `(\w+)` to the import line at the bottom of `(\w+)/__init__.py`', SECTION)
COMMANDS = re.findall(r'```bash\npython train.py (.*?)\n```', SECTION)
ONE_EPOCH = ['trainer_params.max_epochs=1', '+trainer_params.limit_train_batches=3',
             '+trainer_params.limit_val_batches=2', '+trainer_params.limit_test_batches=2',
             '+trainer_params.enable_progress_bar=false']


def test_the_section_has_a_model_a_dataset_and_a_task():
    assert [path for path, _ in FILES] == ['models/mynet.py', 'datasets/blobs.py',
                                           'models/mixup.py']
    assert IMPORTS == [('mynet', 'models'), ('blobs', 'datasets'), ('mixup', 'models')]
    assert len(COMMANDS) == 3


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    """A copy of the project's files (what `git clone` gives) with the snippets' files in it."""
    copy = tmp_path_factory.mktemp('clone') / 'runyard'
    listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, listed.split('\0')):
        if (ROOT / rel).is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, copy / rel)
    for path, code in FILES:
        (copy / path).write_text(code)
    return copy


def add_to_import_line(init, name):
    """What the README says: the name joins the import line at the bottom of __init__.py."""
    text = init.read_text()
    last = text.rindex('from . import ')
    init.write_text(text[:last] + f'from . import {name}, ' +
                    text[last + len('from . import '):].lstrip('('))
    assert re.search(rf'from \. import {name}, ', init.read_text())


def command(line, script, save):
    return [script, *shlex.split(line), *ONE_EPOCH, '--save-dir', str(save)]


def test_before_the_import_line_the_error_names_the_file(project, tmp_path):
    result = run_command(*command(COMMANDS[2], 'train.py', tmp_path), cwd=project)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "models/mixup.py registers it but is not imported: add mixup to the import line in "
        "models/__init__.py"), result.stderr
    assert not (tmp_path / 'mixup').exists()


@pytest.mark.parametrize('script', ['train.py', 'train_pl.py'])
@pytest.mark.parametrize('index', range(3), ids=['model', 'dataset', 'task'])
def test_each_snippet_trains_an_epoch(project, index, script, tmp_path):
    name, package = IMPORTS[index]
    init = project / package / '__init__.py'
    if f'import {name},' not in init.read_text():
        add_to_import_line(init, name)
    result = run_command(*command(COMMANDS[index], script, tmp_path), cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]
    run = next(tmp_path.iterdir())
    assert 'epoch 1/1' in (run / 'log.txt').read_text()
    assert (run / 'ckpt' / 'last.ckpt').is_file()
