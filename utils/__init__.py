"""Plumbing shared by every folder and both entrypoints. Imports nothing of the project, so
any module may import it; the folders use these names, so they stay stable.

    errors.py    ConfigError: a user's mistake as one line, exit status 2
    registry.py  Registry: names -> classes, make({name, args})
    config.py    YAML configs: _base_, _delete_, ${} interpolation, overrides, provenance
    run.py       the shared command line and run folders (save/<name>/)
    environment.py  <run>/env.txt: Python, packages, CUDA, host, GPUs, the command
    logs.py      metrics.csv, the config in TensorBoard's HParams view
    seed.py      seeding, and the random states a checkpoint keeps
    speed.py     the GPU speed settings of a config, time-to-first-step
    weights.py   checkpoints loaded with weights_only=True, best checkpoint, init_from
    writer.py    checkpoint files written on a thread beside training; wait_for_writes()
    deferred.py  scipy.signal, matplotlib, torchvision: imported when first used, not at torchmetrics' top
  the run-safety features both engines share (train.py calls them, Lightning callbacks wrap them):
    guards.py          stop signals, the NaN/Inf policy, agreement across ranks
    checkpoints.py     the checkpoint: section (top-k by monitor, last.ckpt, one write a save)
    early_stopping.py  early_stopping
    progress.py        the first-step and per-epoch ETA lines

A config is a YAML mapping:
    data_module:   {name, args}                     datasets registry
    train_wrapper: {name, args: {model_spec, loss_spec, optim_spec, sched_spec, metrics}}  tasks
    trainer_params: {...}                           pl.Trainer arguments (+ nan_policy, tf32)
    checkpoint:    {...}                            utils/checkpoints.py
    callbacks:     [{name, args}, ...]              callbacks registry or dotted paths
    loggers:       [{name, args}, ...]              experiment trackers (loggers/); default tensorboard
    seed: int
    test: bool                                      evaluate the test split after fit
"""
from .config import (Provenance, apply_overrides, check_config, interpolate, load_config,
                     resolve_run_values, uses_run_values,
                     load_yaml, parse_yaml)
from .errors import (ConfigError, ConfigErrors, Mistakes, TrainingStopped, at_key, close_matches,
                     each, first_line, listing, run_cli, run_entrypoint, short)
from .registry import Registry, accepted_args, check_args, import_path
from .types import check_trainer_params
from .seed import all_rng_states, rng_state, seed_everything, set_rng_state
from .run import (ROOT, Run, append_log, atomic_link, atomic_save, check_name, check_output,
                  check_report, disk_errors, replace_atomically, tested_line, write_text,
                  describe, eta_line, find_resume, format_duration, is_rank_zero, launcher, parse_gpus, parser,
                  snapshot_code, start, write_git_state)
from .environment import differences as environment_differences
from .logs import (append_whole, csv_line, flat_config, hide_upstream_warnings, metrics_csv_path,
                   record_metrics, tensorboard_writer, write_hparams, write_images, write_texts)
from .speed import cpu_cuda_check, first_step_line, process_age, set_tf32, speed_settings
from .weights import (best_checkpoint, check_resumable, find_checkpoint, init_from, load_checkpoint,
                      without_init_from)
from .guards import NAN_POLICIES, LossChecks, SignalRaised, StopSignals, agreed, \
    check_nan_policy, leave_group, loss_is_usable, signals_raise, stopped_message
from .checkpoints import CheckpointPolicy
from .writer import wait as wait_for_writes
from .deferred import defer_imports
from .early_stopping import EarlyStopping
from .progress import Progress, steps_reached
from .monitors import check_monitors, monitored
