"""Language modelling, the `lm` task: (ids, next ids) batches, a model giving next-token
logits at every position. Logs train/loss and val/loss (cross-entropy in nats a token),
val/ppl (torchmetrics' Perplexity: exp of the mean loss over every token of the split), and
each epoch a sample the model writes, in TensorBoard's TEXT tab and log.txt."""
import torch
import torch.nn.functional as F

import models
import utils
from models.task import Task


@models.wrappers.register('lm')
class LanguageModel(Task):
    def __init__(self, model_spec, optim_spec, sched_spec=None, metrics=None, prompt='def ',
                 sample_length=200):
        super().__init__(optim_spec, sched_spec)
        with utils.at_key('model_spec'):
            self.model = models.make(model_spec)
        default = [{'name': 'torchmetrics.text.Perplexity', 'log_as': 'ppl'}]
        self.metrics = models.make_metrics(metrics, default)
        self.prompt, self.sample_length = prompt, sample_length

    def forward(self, ids):
        return self.model(ids)

    def training_step(self, batch):
        x, y = batch
        return F.cross_entropy(self(x).flatten(0, 1), y.flatten())

    def validation_step(self, batch):
        x, y = batch
        logits = self(x)
        return {'loss': F.cross_entropy(logits.flatten(0, 1), y.flatten()),
                'preds': logits.float(), 'target': y}

    def predict_step(self, x):
        return self(x).argmax(-1)

    def epoch_texts(self):
        """A sample from the prompt: the same draws every epoch (its own generator), so the
        samples differ by what the model learned, and torch's random state is untouched."""
        device = next(self.parameters()).device
        ids = torch.tensor([list(self.prompt.encode())], device=device)
        was_training = self.training
        self.eval()
        try:
            out = self.model.generate(ids, self.sample_length,
                                      generator=torch.Generator(device).manual_seed(0))
        finally:
            self.train(was_training)
        return {'sample': bytes(out[0].tolist()).decode(errors='replace')}
