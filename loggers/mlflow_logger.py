import time

import loggers
import utils


@loggers.register('mlflow')
class MLflow(loggers.Tracker):
    """An MLflow run (named after the run folder) in `experiment_name` of `tracking_uri`
    (sqlite:///save/mlflow.db, an http:// server; default: $MLFLOW_TRACKING_URI or ./mlruns).
    Read it back with mlflow's MlflowClient(tracking_uri).get_metric_history(run_id, 'val/acc');
    the run id is in <run>/trackers.json."""
    package, external = 'mlflow', True

    def __init__(self, experiment_name: str = 'runyard', run_name: str | None = None,
                 tracking_uri: str | None = None, tags: dict | None = None):
        self.args = dict(experiment_name=experiment_name, run_name=run_name,
                         tracking_uri=tracking_uri, tags=tags)

    def lightning(self, run_dir, run_id):
        from pytorch_lightning.loggers import MLFlowLogger
        args = {k: v for k, v in self.args.items() if v is not None}
        return MLFlowLogger(**{'run_name': run_dir.name, **args}, run_id=run_id)

    def lightning_id(self, logger):
        return logger.run_id  # creates the run

    def lightning_resumed(self, logger):
        logger.experiment.update_run(logger.run_id, status='RUNNING')

    def lightning_stop(self, logger):
        logger.experiment.set_terminated(logger.run_id, status='KILLED')

    def open(self, run_dir, run_id):
        from mlflow.tracking import MlflowClient
        self.client = MlflowClient(self.args['tracking_uri'])
        if run_id is None:
            name = self.args['experiment_name']
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else \
                self.client.create_experiment(name)
            run_id = self.client.create_run(experiment_id, run_name=self.args['run_name'] or
                                            run_dir.name, tags=self.args['tags']).info.run_id
        else:  # continued: it was KILLED by a stop signal (or FAILED, or FINISHED)
            self.client.update_run(run_id, status='RUNNING')
        self.run_id = run_id

    def log_metrics(self, metrics, step):
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step)
                                                    for k, v in metrics.items()])

    def log_config(self, cfg, metric_names):
        from mlflow.entities import Param
        params = [Param(k, str(v)) for k, v in utils.flat_config(cfg).items()]
        for i in range(0, len(params), 100):  # MLflow's limit of params per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def close(self):
        self.client.set_terminated(self.run_id)  # FINISHED

    def fail(self):
        self.client.set_terminated(self.run_id, status='FAILED')  # as Lightning's logger does

    def stop(self):
        self.client.set_terminated(self.run_id, status='KILLED')  # until a --resume
