"""The one training loop (biosig.train.loop.fit) with a toy task whose answers are known: what
every task gets from it (run folder, best epoch by the task's direction, early stopping,
gradient accumulation, the per-step schedule, resume equal to an uninterrupted run, a guard
against a non-finite loss)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel

from biosig.train.loop import StepOutput, Task, fit


class _Train(BaseModel):
    epochs: int


class _Config(BaseModel):
    device: str
    seed: int
    output_dir: str
    recipe: str
    train: _Train


def _cfg(tmp_path, *, epochs=4, seed=0):
    return _Config(device="cpu", seed=seed, output_dir=str(tmp_path), recipe="toy",
                   train=_Train(epochs=epochs))


class LinearTask(Task):
    """y = x @ w_true; a linear model fitted by SGD on mean squared error; validation MSE
    decides (lower is better)."""

    monitor = "mse"
    mode = "min"
    items_unit = "ex"

    def __init__(self, *, batch=8, accum=1, lr=0.1, scheduler="epoch", fail_at=None,
                 nan_at=None, validate_first=False, patience=None, lr_bad=False):
        self.batch, self.grad_accum_steps, self.lr = batch, accum, lr
        self.scheduler_interval = scheduler
        self.fail_at, self.nan_at, self.calls = fail_at, nan_at, 0
        self.validate_first, self.patience, self.lr_bad = validate_first, patience, lr_bad
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(64, 3, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5])
        self.xv = torch.randn(32, 3, generator=g)
        self.yv = self.xv @ torch.tensor([1.0, -2.0, 0.5])
        self.saved_best: list[int] = []

    def setup(self, ctx):
        self.ctx = ctx
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 1, bias=False)

    def configure_optimizers(self, params):
        opt = torch.optim.SGD(params, lr=0.0 if self.lr_bad else self.lr)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)

    def train_batches(self, epoch):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(1000 + epoch))
        return [order[i:i + self.batch] for i in range(0, 64, self.batch)]

    def training_step(self, net, batch, *, generator):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt
        pred = net(self.x[batch])[:, 0]
        loss = torch.mean((pred - self.y[batch]) ** 2)
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float("nan")
        return StepOutput(loss, n=len(batch), items=len(batch))

    def validate(self, epoch):
        with torch.no_grad():
            mse = float(torch.mean((self.model(self.xv)[:, 0] - self.yv) ** 2))
        return {"mse": mse}, mse

    def on_best(self, epoch, metrics, state):
        self.saved_best.append(epoch)

    def finish(self, result):
        return {"best_epoch": result.best_epoch, "epochs": [h["epoch"] for h in result.history]}


def _history(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x]


def test_fit_writes_the_run_folder_and_learns(tmp_path):
    task = LinearTask()
    out, report, result = fit(task, _cfg(tmp_path), run_dir=tmp_path / "r", progress=False)
    hist = _history(out)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist[-1]["valid"]["mse"] < 0.1 * hist[0]["valid"]["mse"]
    for name in ("config.yaml", "env.json", "last.pt", "report.json"):
        assert (out / name).is_file(), name
    env = json.loads((out / "env.json").read_text())
    assert env["n_parameters"] == 3 and env["n_trainable"] == 3
    rep = json.loads((out / "report.json").read_text())
    assert rep["best_epoch"] == 4 and rep["wall_s"] > 0 and rep["stopped_early"] is False
    # mode "min": every epoch that lowered the MSE was saved as the best
    assert task.saved_best == [1, 2, 3, 4]
    # the per-epoch schedule: StepLR(gamma 0.9) stepped once after each epoch
    assert [round(h["lr"], 6) for h in hist] == [round(0.1 * 0.9 ** k, 6) for k in range(4)]


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    """Two accumulated half batches of equal size give the same update as the whole batch."""
    a, b = LinearTask(batch=8, accum=1), LinearTask(batch=4, accum=2)
    # the same examples per optimiser step: 4 + 4 consecutive items = one batch of 8
    fit(a, _cfg(tmp_path, epochs=2), run_dir=tmp_path / "a", progress=False)
    fit(b, _cfg(tmp_path, epochs=2), run_dir=tmp_path / "b", progress=False)
    torch.testing.assert_close(a.model.weight, b.model.weight, rtol=1e-5, atol=1e-6)
    assert _history(tmp_path / "a")[-1]["step"] == _history(tmp_path / "b")[-1]["step"] == 16


def test_per_step_schedule(tmp_path):
    fit(LinearTask(scheduler="step"), _cfg(tmp_path, epochs=1), run_dir=tmp_path / "s",
        progress=False)
    # 8 optimiser steps in the epoch, the scheduler stepped after each
    assert _history(tmp_path / "s")[0]["lr"] == pytest.approx(0.1 * 0.9 ** 8)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    whole = LinearTask()
    fit(whole, _cfg(tmp_path), run_dir=tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):                # killed in epoch 3 (8 batches/epoch)
        fit(LinearTask(fail_at=8 * 2 + 3), _cfg(tmp_path), run_dir=tmp_path / "cut",
            progress=False)
    assert [h["epoch"] for h in _history(tmp_path / "cut")] == [1, 2]
    cut = LinearTask()
    _, report, _ = fit(cut, _cfg(tmp_path), run_dir=tmp_path / "cut", resume=True,
                       progress=False)
    torch.testing.assert_close(whole.model.weight, cut.model.weight, rtol=0, atol=0)
    loss = [h["train_loss"] for h in _history(tmp_path / "whole")]
    assert [h["train_loss"] for h in _history(tmp_path / "cut")] == loss
    assert report["epochs"] == [1, 2, 3, 4]
    # finished: resuming returns the report as it is; asked for more epochs it trains on
    _, again, result = fit(LinearTask(), _cfg(tmp_path), run_dir=tmp_path / "cut",
                           resume=True, progress=False)
    assert result is None and again["epochs"] == [1, 2, 3, 4]
    _, more, _ = fit(LinearTask(), _cfg(tmp_path, epochs=5), run_dir=tmp_path / "cut",
                     resume=True, progress=False)
    assert more["epochs"] == [1, 2, 3, 4, 5]


def test_resume_without_checkpoint_is_an_error(tmp_path):
    from biosig.errors import ConfigError
    with pytest.raises(ConfigError, match="last.pt not found"):
        fit(LinearTask(), _cfg(tmp_path), run_dir=tmp_path / "none", resume=True,
            progress=False)


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    with pytest.raises(FloatingPointError, match="toy: training loss became nan at epoch 1"):
        fit(LinearTask(nan_at=3), _cfg(tmp_path), run_dir=tmp_path / "n", progress=False)


def test_starting_model_is_epoch_zero_and_patience_stops(tmp_path):
    """validate_first scores the starting model as epoch 0; a task that never improves on it
    (learning rate 0: the same score, which is not better) keeps epoch 0 as the best and stops
    after ``patience`` epochs without improvement."""
    task = LinearTask(validate_first=True, patience=2, lr_bad=True)
    out, report, result = fit(task, _cfg(tmp_path, epochs=10), run_dir=tmp_path / "p",
                              progress=False)
    assert [h["epoch"] for h in _history(out)] == [0, 1, 2]
    assert _history(out)[0]["train_loss"] is None
    assert result.stopped_early and result.best_epoch == 0 and task.saved_best == [0]
    assert report["stopped_early"] is True
