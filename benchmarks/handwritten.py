"""The same work as a runyard entrypoint, written by hand: what benchmarks/overhead.py measures
train.py and train_pl.py against. No runyard import: torch, torchvision and tensorboardX only
(and Lightning, with `--engine lightning`).

    python benchmarks/handwritten.py --workload mnist --data ROOT --epochs 3 --out DIR
                                     [--device cuda] [--engine torch|lightning]

Each workload does what its config makes the entrypoints do (benchmarks/overhead.py gives them
the same overrides): the same data read the same way (`digits`: scikit-learn's file, whole
splits on the device, batches by index; `mnist` and `resnet18`: torchvision's MNIST and CIFAR10
classes on the real files, classic transforms, a DataLoader without workers), the same model,
optimizer and lr schedule, train/loss to TensorBoard every 10 steps, validation (loss and
accuracy) every epoch, a checkpoint every epoch (weights, optimizer, schedule) and one printed
line per epoch. It writes `first step: X s after launch` to stdout, as the entrypoints do to
log.txt.

`--engine lightning` does the same work with the least a Lightning script needs: a
LightningModule of the same steps (train/loss logged at log steps only; validation summed by
hand and logged once an epoch), Lightning's TensorBoardLogger and ModelCheckpoint (last.ckpt
every epoch), no sanity check. What that costs over the plain loop is Lightning's own loop,
which no entrypoint on the Trainer can avoid; what train_pl.py costs over it is runyard's.
"""
import argparse
import gzip
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from tensorboardX import SummaryWriter
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

LOG_EVERY = 10


def process_age():
    start_ticks = int(Path('/proc/self/stat').read_text().rsplit(')', 1)[1].split()[19])
    return float(Path('/proc/uptime').read_text().split()[0]) - start_ticks / os.sysconf('SC_CLK_TCK')


def digits(root, device):
    """(train, val) as (x, y) tensors on the device: scikit-learn's 8x8 digits, split 70/10."""
    import importlib.util
    package = importlib.util.find_spec('sklearn')
    path = Path(package.submodule_search_locations[0]) / 'datasets' / 'data' / 'digits.csv.gz'
    with gzip.open(path) as f:
        table = np.loadtxt(f, delimiter=',')
    x = torch.tensor(table[:, :-1], dtype=torch.float32).div(16).view(-1, 1, 8, 8)
    y = torch.tensor(table[:, -1], dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_val, n_test = int(len(y) * 0.1), int(len(y) * 0.2)
    parts = {'val': order[:n_val], 'train': order[n_val + n_test:]}
    return {split: (x[i].to(device), y[i].to(device)) for split, i in parts.items()}


class Slices:
    """Batches of (x, y) by index, as runyard's memory loader makes them: each pass over it is
    an epoch, shuffled with the pass's number as the seed."""
    def __init__(self, x, y, batch_size, shuffle):
        self.x, self.y, self.batch_size, self.shuffle, self.passes = x, y, batch_size, shuffle, 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(
            self.passes)) if self.shuffle else torch.arange(len(self.x))
        self.passes += 1
        for batch in order.to(self.x.device).split(self.batch_size):
            yield self.x[batch], self.y[batch]


def files(reader, root, n_val, train_transform, eval_transform):
    train_set = reader(root, train=True, transform=train_transform)
    val_set = reader(root, train=True, transform=eval_transform)
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0)).tolist()
    return Subset(train_set, order[n_val:]), Subset(val_set, order[:n_val])


class CIFAR10(torchvision.datasets.CIFAR10):
    """Without the md5 check against the official files, as datasets/cifar.py reads them: the
    benchmark's files are random images in the same format."""
    def __init__(self, *args, **kwargs):
        self.train_list = [[name, None] for name, _ in self.train_list]
        self.test_list = [[name, None] for name, _ in self.test_list]
        self.meta = {**self.meta, 'md5': None}
        super().__init__(*args, **kwargs)


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def resnet18_cifar():
    net = torchvision.models.resnet18(weights=None, num_classes=10)
    net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def setup(args, device):
    """(model, optimizer, scheduler, train batches, val batches) of a workload; each pass over
    the batches is an epoch's."""
    if args.workload == 'digits':
        data = digits(args.data, device)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.0),
                              nn.Linear(256, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        train, val = Slices(*data['train'], 64, True), Slices(*data['val'], 64, False)
    else:
        if args.workload == 'mnist':
            normalise = T.Compose([T.ToTensor(), T.Normalize([0.1307], [0.3081])])
            train_set, val_set = files(torchvision.datasets.MNIST, args.data, args.val_size,
                                       normalise, normalise)
            model, batch_size = lenet5(), 64
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        else:
            normalise = [T.ToTensor(), T.Normalize([0.4914, 0.4822, 0.4465],
                                                   [0.2470, 0.2435, 0.2616])]
            augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                                 *normalise])
            train_set, val_set = files(CIFAR10, args.data, args.val_size,
                                       augment, T.Compose(normalise))
            model, batch_size = resnet18_cifar(), args.batch_size
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9,
                                        weight_decay=5e-4, nesterov=True)
        train = DataLoader(train_set, batch_size, shuffle=True,
                           generator=torch.Generator().manual_seed(0))
        val = DataLoader(val_set, batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs) \
        if args.workload != 'mnist' else None
    return model.to(device), optimizer, scheduler, train, val


def first_step_line(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return f'first step: {process_age():.2f} s after launch'


def add_val(sums, logits, y):
    """Validation's sums, [loss, correct, count], with one batch's: both engines use it."""
    sums[0] += F.cross_entropy(logits, y, reduction='sum').item()
    sums[1] += (logits.argmax(1) == y).sum().item()
    sums[2] += len(y)


def epoch_line(epoch, epochs, loss, acc):
    return f'epoch {epoch + 1}/{epochs}  val/loss {loss:.4f}  val/acc {acc:.4f}'


def fit(args, device, model, optimizer, scheduler, train, val, out):
    writer, step = SummaryWriter(str(out)), 0
    for epoch in range(args.epochs):
        model.train()
        for x, y in train:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step == 0:
                print(first_step_line(device), flush=True)
            if (step + 1) % LOG_EVERY == 0:
                writer.add_scalar('train/loss', loss.item(), step)
            step += 1
        model.eval()
        sums = [0.0, 0, 0]
        with torch.no_grad():
            for x, y in val:
                x, y = x.to(device), y.to(device)
                add_val(sums, model(x), y)
        total, correct, n = sums
        if scheduler:
            scheduler.step()
        writer.add_scalar('val/loss', total / n, step - 1)
        writer.add_scalar('val/acc', correct / n, step - 1)
        torch.save({'epoch': epoch, 'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                    'scheduler': scheduler.state_dict() if scheduler else None},
                   out / 'last.ckpt')
        print(epoch_line(epoch, args.epochs, total / n, correct / n), flush=True)
    writer.close()


def fit_with_lightning(args, device, model, optimizer, scheduler, train, val, out):
    nvml_check = os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK')
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import TensorBoardLogger
    if device.type == 'cpu' and nvml_check is None:
        # lightning_fabric's import sets it, and then every torch.cuda.is_available() (Adam
        # asks at each step) asks NVML again on a machine without CUDA; runyard unsets it too
        os.environ.pop('PYTORCH_NVML_BASED_CUDA_CHECK', None)

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model, self.sums, self.saves = model, None, 0

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.model(x), y)
            if (self.global_step + 1) % LOG_EVERY == 0:
                self.log('train/loss', loss)
            return loss

        def on_train_batch_end(self, outputs, batch, batch_idx):
            if self.global_step == 1:
                print(first_step_line(device), flush=True)

        def on_validation_epoch_start(self):
            self.sums = [0.0, 0, 0]

        def validation_step(self, batch, batch_idx):
            x, y = batch
            add_val(self.sums, self.model(x), y)

        def on_validation_epoch_end(self):
            total, correct, n = self.sums
            self.log_dict({'val/loss': total / n, 'val/acc': correct / n})
            print(epoch_line(self.current_epoch, args.epochs, total / n, correct / n), flush=True)

        def on_save_checkpoint(self, checkpoint):  # the count: one an epoch (a test reads it)
            self.saves += 1
            checkpoint['saves'] = self.saves

        def configure_optimizers(self):
            return {'optimizer': optimizer, **({'lr_scheduler': scheduler} if scheduler else {})}

    trainer = pl.Trainer(
        accelerator='gpu' if device.type == 'cuda' else 'cpu', devices=1, max_epochs=args.epochs,
        logger=TensorBoardLogger(str(out), name='', version=''), log_every_n_steps=LOG_EVERY,
        # no monitor, save_top_k=1: last.ckpt written over at every epoch's end
        callbacks=[ModelCheckpoint(dirpath=str(out), filename='last', save_top_k=1,
                                   enable_version_counter=False)],
        num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=str(out))
    trainer.fit(Classifier(), train, val)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--workload', choices=('digits', 'mnist', 'resnet18'), required=True)
    p.add_argument('--data', help='the dataset root (mnist, resnet18)')
    p.add_argument('--val-size', type=int, default=1000)
    p.add_argument('--batch-size', type=int, default=128, help='resnet18 only')
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--out', required=True, help='the run folder')
    p.add_argument('--device', default='cpu')
    p.add_argument('--engine', choices=('torch', 'lightning'), default='torch',
                   help='the plain loop (default), or the same work on the Lightning Trainer')
    args = p.parse_args()
    torch.manual_seed(0)
    device = torch.device('cuda:0' if args.device == 'cuda' else 'cpu')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    engine = fit_with_lightning if args.engine == 'lightning' else fit
    engine(args, device, *setup(args, device), out)


if __name__ == '__main__':
    main()
