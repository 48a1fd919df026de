"""Training recipes: typed configs, datasets over manifests, the training engine.

>>> from biosig.train import load_config, run                       # doctest: +SKIP
>>> cfg = load_config("recipes/ecg_af_cinc2017/config.yaml", profile="smoke")
>>> result = run(cfg)             # runs/ecg_af_cinc2017/<run-id>/{report.json, best.pt, ...}

- :mod:`biosig.train.config` -- :class:`TrainConfig`, :func:`load_config` (profiles, ``--set``);
- :mod:`biosig.train.data` -- examples, splits and K folds, :class:`WindowDataset`,
  :class:`FrontEnd`, augmentation;
- :mod:`biosig.train.engine` -- :func:`compute_loss`, :func:`train_one_epoch`,
  :func:`evaluate`, :func:`train`, :func:`run`;
- :mod:`biosig.train.runs` -- what every task's run shares: device and process group, seeding,
  the run folder (``--run-id`` never overwrites), atomic checkpoints, ``env.json``;
- :mod:`biosig.train.cache` -- the on-disk feature cache (``data.feature_cache``);
- :mod:`biosig.train.evaluation` -- the metrics a run reports;
- :mod:`biosig.train.inference` -- load a run, predict, embed, Grad-CAM.
"""

from biosig.train.config import TrainConfig, load_config, validate_config
from biosig.train.engine import compute_loss, evaluate, run, train, train_one_epoch
from biosig.train.runs import pick_device, seed_everything

__all__ = ["TrainConfig", "load_config", "validate_config", "run", "train", "compute_loss",
           "train_one_epoch", "evaluate", "pick_device", "seed_everything"]
