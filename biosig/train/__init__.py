"""Training recipes: typed configs, datasets over manifests, the training engine.

>>> from biosig.train import load_config, run                       # doctest: +SKIP
>>> cfg = load_config("recipes/ecg_af_cinc2017/config.yaml", profile="smoke")
>>> result = run(cfg)             # runs/ecg_af_cinc2017/<run-id>/{report.json, best.pt, ...}

- :mod:`biosig.train.config` -- :class:`TrainConfig`, :func:`load_config` (profiles, ``--set``);
- :mod:`biosig.train.data` -- examples, splits and K folds, :class:`WindowDataset`,
  :class:`FrontEnd`, augmentation;
- :mod:`biosig.train.loop` -- the one training loop (:func:`fit`) and the hooks a task
  supplies (:class:`Task`): checkpoints and resume, early stopping, ``metrics.jsonl``, DDP;
- :mod:`biosig.train.engine` -- the classifier task: :func:`compute_loss`, :func:`evaluate`,
  :class:`ClassifierTask`, :func:`train`, :func:`run`;
- :mod:`biosig.train.whisper` -- the Whisper fine-tuning task (data and targets, the loop's
  hooks, export);
- :mod:`biosig.train.runs` -- what every task's run shares: device and process group, seeding,
  the run folder (``--run-id`` never overwrites), atomic checkpoints, ``env.json``;
- :mod:`biosig.train.cache` -- the on-disk feature cache (``data.feature_cache``);
- :mod:`biosig.train.evaluation` -- the metrics a run reports;
- :mod:`biosig.train.inference` -- load a run, predict, embed, Grad-CAM.
"""

import lazy_loader as _lazy

# Declared once, loaded on first use: ``import biosig.train.config`` (YAML validation, the CLI's
# --help) must not pay for torch, which the engine and the loop import.
__getattr__, __dir__, __all__ = _lazy.attach(__name__, submodules=[
    "cache", "config", "data", "drift", "engine", "evaluation", "hybrid", "inference", "loop",
    "plots", "report", "runs", "whisper",
], submod_attrs={
    "config": ["TrainConfig", "load_config", "validate_config"],
    "engine": ["ClassifierTask", "compute_loss", "evaluate", "run", "train"],
    "loop": ["Task", "fit"],
    "runs": ["pick_device", "seed_everything"],
})
