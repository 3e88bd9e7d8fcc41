import loggers
import utils


@loggers.register('wandb')
class WandB(loggers.Tracker):
    """A W&B run (named after the run folder) in `project`, its files in <run>/wandb/;
    `offline: true` syncs later with `wandb sync save/NAME/wandb/offline-run-*`. Metrics are
    logged against `trainer/global_step`, as Lightning's WandbLogger does."""
    package, external = 'wandb', True

    def __init__(self, project: str = 'runyard', name: str | None = None,
                 offline: bool = False, entity: str | None = None, tags: list | None = None):
        self.args = dict(project=project, name=name, offline=offline, entity=entity, tags=tags)

    def lightning(self, run_dir, run_id):
        from pytorch_lightning.loggers import WandbLogger
        args = {k: v for k, v in self.args.items() if v is not None}
        return WandbLogger(**{'name': run_dir.name, **args}, save_dir=str(run_dir),
                           id=run_id, resume='allow')

    def lightning_id(self, logger):
        return logger.experiment.id  # starts the run

    def lightning_close(self, logger):
        # WandbLogger leaves its run open until the process exits: another run in the same
        # process (tune.py, a notebook, a resume) would log into it
        logger.experiment.finish()

    def open(self, run_dir, run_id):
        import wandb
        args = dict(self.args)
        self.run = wandb.init(project=args['project'], name=args['name'] or run_dir.name,
                              entity=args['entity'], tags=args['tags'], dir=str(run_dir),
                              mode='offline' if args['offline'] else 'online', id=run_id,
                              resume='allow')
        self.run.define_metric('trainer/global_step')
        self.run.define_metric('*', step_metric='trainer/global_step', step_sync=True)
        self.run_id = self.run.id

    def log_metrics(self, metrics, step):
        self.run.log({**metrics, 'trainer/global_step': step})

    def log_config(self, cfg, metric_names):
        self.run.config.update(utils.flat_config(cfg), allow_val_change=True)

    def close(self):
        self.run.finish()

    def fail(self):
        self.run.finish(exit_code=1)  # the W&B run is marked failed
