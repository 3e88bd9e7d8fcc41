"""Regression, the `regression` task: (inputs, float targets) batches, a model whose outputs
have the targets' size (N or N x K), a loss (default MSE), mean absolute and squared error."""
import losses
import models
import utils
from models.task import Task


@models.wrappers.register('regression')
class Regression(Task):
    """Logs train/loss, val/loss, val/mae, val/mse (and test/*). A model output of shape
    (N, 1) for targets of shape (N,) is taken as (N,); predictions are the raw outputs."""

    def __init__(self, model_spec, optim_spec, loss_spec=None, sched_spec=None, metrics=None):
        super().__init__(optim_spec, sched_spec)
        with utils.at_key('model_spec'):
            self.model = models.make(model_spec)
        with utils.at_key('loss_spec'):
            self.loss_fn = losses.make(loss_spec or {'name': 'mse'})
        self.metrics = models.make_metrics(
            metrics, [{'name': 'MeanAbsoluteError'}, {'name': 'MeanSquaredError'}])

    def forward(self, x):
        return self.model(x)

    def predict(self, x, y):
        out = self(x)
        if out.shape != y.shape and out.numel() == y.numel():
            out = out.reshape(y.shape)
        return out

    def training_step(self, batch):
        x, y = batch
        return self.loss_fn(self.predict(x, y), y)

    def validation_step(self, batch):
        x, y = batch
        out = self.predict(x, y)
        return {'loss': self.loss_fn(out, y), 'preds': out, 'target': y}
