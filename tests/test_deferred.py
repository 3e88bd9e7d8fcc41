"""utils/deferred.py: torchmetrics without scipy.signal's import, and scipy.signal whole for
whoever uses it. Each case in a fresh interpreter: this one has imported both already."""
import subprocess
import sys

from conftest import ROOT

REAL_LOADED = "'scipy.signal._signaltools' in sys.modules"


def python(code):
    result = subprocess.run([sys.executable, '-c', 'import sys\n' + code], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def test_torchmetrics_and_lightning_import_without_scipy_signal():
    out = python('import models, torchmetrics, pytorch_lightning\n'
                 'models.metrics.fill()\n'
                 "metric = models.metrics.registry.make({'name': 'MulticlassAccuracy', "
                 "'args': {'num_classes': 3, 'average': 'micro'}})\n"
                 'import torch\n'
                 'metric.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))\n'
                 f'print(round(metric.compute().item(), 4), {REAL_LOADED})\n')
    assert out == ['0.6667', 'False']


def test_scipy_signal_is_the_real_one_at_its_first_use():
    out = python('import models, torchmetrics\n'
                 'from scipy import signal  # the placeholder, kept\n'
                 'import scipy.signal, numpy\n'
                 f'print({REAL_LOADED})\n'
                 'window = scipy.signal.hamming(8)  # the name torchmetrics reads\n'
                 'from scipy.signal import butter, windows\n'
                 'b, a = butter(2, 0.25)\n'
                 f'print({REAL_LOADED}, type(sys.modules["scipy.signal"]).__name__,\n'
                 '      sys.modules["scipy.signal"] is scipy.signal,\n'
                 '      numpy.allclose(window, windows.hamming(8)),\n'
                 '      signal.lfilter is scipy.signal.lfilter,\n'
                 '      numpy.isfinite(signal.lfilter(b, a, numpy.ones(4))).all())\n')
    assert out == ['False', 'True', 'module', 'True', 'True', 'True', 'True']


def test_a_submodule_imported_first_loads_the_real_package():
    out = python('import models, torchmetrics\n'
                 'import scipy.signal.windows as w\n'
                 'import scipy.signal\n'
                 f'print({REAL_LOADED}, round(float(w.hann(3)[1]), 3), '
                 'callable(scipy.signal.welch))\n')
    assert out == ['True', '1.0', 'True']
