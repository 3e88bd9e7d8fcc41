"""utils/deferred.py: torchmetrics without scipy.signal's, matplotlib's and torchvision's
imports, and each whole for whoever uses it. Each case in a fresh interpreter: this one has
imported them all already."""
import subprocess
import sys

from conftest import ROOT

REAL_LOADED = "'scipy.signal._signaltools' in sys.modules"
MPL_LOADED = "'matplotlib.figure' in sys.modules"
TV_LOADED = "'torchvision.datasets' in sys.modules"  # what the real torchvision imports


def python(code):
    result = subprocess.run([sys.executable, '-c', 'import sys\n' + code], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def test_torchmetrics_and_lightning_import_without_scipy_signal_or_matplotlib():
    out = python('import models, torchmetrics, pytorch_lightning\n'
                 'models.metrics.fill()\n'
                 "metric = models.metrics.registry.make({'name': 'MulticlassAccuracy', "
                 "'args': {'num_classes': 3, 'average': 'micro'}})\n"
                 'import torch\n'
                 'metric.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))\n'
                 f'print(round(metric.compute().item(), 4), {REAL_LOADED}, {MPL_LOADED})\n')
    assert out == ['0.6667', 'False', 'False']


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
                 'callable(scipy.signal.welch), w is scipy.signal.windows)  # imported once\n')
    assert out == ['True', '1.0', 'True', 'True']


def test_a_metric_plots_with_the_real_matplotlib():
    out = python('import models, torchmetrics, torch\n'
                 'metric = torchmetrics.classification.MulticlassAccuracy(num_classes=3)\n'
                 'metric.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))\n'
                 f'print({MPL_LOADED})\n'
                 'import matplotlib\n'
                 "matplotlib.use('Agg')\n"
                 'fig, ax = metric.plot()  # the style decorator, then pyplot\n'
                 'import matplotlib.pyplot as plt\n'
                 'from matplotlib.axes import Axes\n'
                 '_, mine = plt.subplots()\n'
                 'fig2, ax2 = metric.plot(ax=mine)  # isinstance(ax, Axes) inside\n'
                 "print(type(fig).__name__, isinstance(ax, Axes), ax2 is mine, fig2 is None,\n"
                 "      type(sys.modules['matplotlib.pyplot']).__name__, plt.figure is plt.figure)\n")
    assert out == ['False', 'Figure', 'True', 'True', 'True', 'module', 'True']


def test_a_matplotlib_submodule_imported_first_loads_the_real_package():
    out = python('import models, torchmetrics\n'
                 'from matplotlib.figure import Figure\n'
                 'import matplotlib, matplotlib.pyplot as plt\n'
                 "print(type(sys.modules['matplotlib']).__name__, plt.Figure is Figure, "
                 'matplotlib.__version__ > "3")\n')
    assert out == ['module', 'True', 'True']  # one matplotlib.figure, not a second copy


def test_a_digits_run_imports_no_torchvision():
    """torchvision (and torch._dynamo before an optimizer imports it) is seconds of start-up:
    a run of a model and data that are not torchvision's does not import it."""
    out = python('import utils, train\n'
                 "utils.run_cli(train.main, ['--config', 'configs/digits.yaml', '--check'])\n"
                 f'print({TV_LOADED}, type(sys.modules["torchvision"]).__name__)\n')
    assert out[-2:] == ['False', '_Deferred']


def test_torchvision_is_the_real_one_at_its_first_use():
    out = python('import models, datasets, torchmetrics, pytorch_lightning, torch\n'
                 "arniqa, dists = (sys.modules[f'torchmetrics.functional.image.{name}']\n"
                 "                 for name in ('arniqa', 'dists'))  # the modules\n"
                 'from torchmetrics.functional.detection import intersection_over_union\n'
                 f'print({TV_LOADED})\n'
                 'import torchvision  # the placeholder\n'
                 'net = torchvision.models.resnet18(num_classes=3)\n'
                 'from torchvision.ops import box_iou\n'
                 'from torchvision.transforms import v2\n'
                 'boxes = torch.tensor([[0., 0., 2., 2.], [1., 1., 3., 3.]])\n'
                 'weights = dists.VGG16_Weights.DEFAULT  # a stand-in class\'s attribute\n'
                 f'print({TV_LOADED}, type(sys.modules["torchvision"]).__name__,\n'
                 '      net.fc.out_features, callable(v2.Normalize),\n'
                 '      torch.equal(intersection_over_union(boxes, boxes, aggregate=False),\n'
                 '                  box_iou(boxes, boxes)),\n'
                 '      type(arniqa.resnet50()).__name__, weights.name,\n'
                 '      isinstance(weights, dists.VGG16_Weights),\n'
                 "      dists.VGG16_Weights['DEFAULT'] is weights is list(dists.VGG16_Weights)[0],\n"
                 '      dists.VGG16_Weights(weights.value) is weights,\n'
                 '      torchvision.models is sys.modules["torchvision.models"])\n')
    assert out == ['False', 'True', 'module', '3', 'True', 'True', 'ResNet', 'IMAGENET1K_V1',
                   'True', 'True', 'True', 'True']


def test_a_torchvision_submodule_imported_first_loads_the_real_package():
    out = python('import models, torchmetrics\n'
                 'from torchvision.transforms import v2\n'
                 'import torchvision, torchvision.transforms\n'
                 f'print({TV_LOADED}, torchvision.transforms.v2 is v2, '
                 'type(sys.modules["torchvision.transforms"]).__name__, '
                 'torchvision.__version__ > "0")\n')
    assert out == ['True', 'True', 'module', 'True']
