"""Supervised classification, the `base` task: (inputs, class index) batches, a model giving
class logits, a loss, accuracy and any other metrics."""
import losses
import models
import utils
from models.task import Task


@models.wrappers.register('base')
class Classification(Task):
    """A model, a loss, an optimizer and an optional lr scheduler, each from its spec. Logs
    train/loss, val/loss, val/acc, test/loss, test/acc (and val/test of any `metrics`).

    Subclass it and override a step for a variation (mixup, a second loss term); register the
    subclass under a new name and set `train_wrapper.name` to it.
    """

    def __init__(self, model_spec, loss_spec, optim_spec, sched_spec=None, num_classes=None,
                 metrics=None):
        super().__init__(optim_spec, sched_spec)
        with utils.at_key('model_spec'):
            self.model = models.make(model_spec)
        with utils.at_key('loss_spec'):
            self.loss_fn = losses.make(loss_spec)
        # the model's num_classes: its spec's, else its default (torchvision's resnet18: 1000)
        num_classes = num_classes or (model_spec.get('args') or {}).get('num_classes') or \
            (utils.accepted_args(models.registry.get(model_spec['name'])) or {}).get('num_classes')
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise utils.ConfigError('must be set (an int) when model_spec.args has no '
                                    'num_classes', key='num_classes')
        self.num_classes = num_classes
        default = [{'name': 'MulticlassAccuracy', 'args': {'average': 'micro'}}]
        self.metrics = models.make_metrics(metrics, default, {'num_classes': num_classes})

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch):
        x, y = batch
        return self.loss_fn(self(x), y)

    def validation_step(self, batch):
        x, y = batch
        logits = self(x)
        return {'loss': self.loss_fn(logits, y), 'preds': logits, 'target': y}

    def predict_step(self, x):
        return self(x).softmax(dim=-1)

    def prediction_table(self, probs):
        header = ['predicted', 'probability', *(f'prob_{c}' for c in range(probs.shape[1]))]
        confidence, predicted = probs.max(dim=1)
        rows = [[c, f'{p:.6g}', *(f'{q:.6g}' for q in row)] for p, c, row in
                zip(confidence.tolist(), predicted.tolist(), probs.tolist())]
        return header, rows
