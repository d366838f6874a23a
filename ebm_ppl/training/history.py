"""What :func:`ebm_ppl.fit` records: per-epoch metrics, the best epoch, and why training stopped."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["History", "TrainingDiverged", "Monitor", "DEFAULT_MONITORS"]

#: The metrics a run monitors when none is named, in order of preference (the first recorded).
DEFAULT_MONITORS = ("val_log_likelihood", "val_pseudo_log_likelihood", "val_accuracy", "train_log_likelihood",
                    "train_pseudo_log_likelihood")


class TrainingDiverged(RuntimeWarning):
    """Training stopped after repeated divergence; the last good model was kept."""


@dataclasses.dataclass
class History:
    """Per-epoch metrics (``records``: one dict per completed epoch), the best epoch by the
    monitored metric, why training stopped (``"completed"``, ``"early stopping"``,
    ``"diverged"``), and how many times the divergence guard restored a good state."""

    records: list[dict[str, float]] = dataclasses.field(default_factory=list)
    monitor: str | None = None
    best_epoch: int | None = None
    stopped: str = "completed"
    message: str = ""
    recoveries: int = 0

    def __getitem__(self, name: str) -> np.ndarray:
        """The values of metric ``name`` over epochs (NaN where absent)."""
        return np.array([r.get(name, np.nan) for r in self.records])

    @property
    def metric_names(self) -> list[str]:
        return sorted({k for r in self.records for k in r})


@dataclasses.dataclass
class Monitor:
    """The metric that selects the best epoch and drives early stopping.

    Attributes:
        name: the metric (None: the first of :data:`DEFAULT_MONITORS` recorded, chosen at the
            first evaluation).
        mode: ``"max"`` or ``"min"``.
        patience: epochs without improvement before stopping; None never stops.
        best_value: the best value so far (None before the first).
    """

    name: str | None
    mode: str = "max"
    patience: int | None = None
    best_value: float | None = None

    def update(self, record: dict[str, float], history: History) -> bool:
        """Read an evaluated epoch's ``record``; return whether it is the best so far (and note it
        in ``history``). Raises a ValueError naming the recorded metrics when a named monitor is
        not among them (a misspelled name would otherwise never select or stop anything)."""
        if self.name is None:
            self.name = next((name for name in DEFAULT_MONITORS if name in record), None)
        elif self.name not in record:
            raise ValueError(f"fit: monitor={self.name!r} is not a recorded metric; the epoch recorded "
                             f"{', '.join(sorted(k for k in record if k != 'epoch'))}")
        history.monitor = self.name
        value = record.get(self.name) if self.name else None
        if value is None:
            return False
        if self.best_value is None or (value > self.best_value if self.mode == "max" else value < self.best_value):
            self.best_value, history.best_epoch = value, record["epoch"]
            return True
        return False

    def exhausted(self, epoch: int, history: History) -> bool:
        """Whether ``patience`` epochs have passed since the best one (then ``history`` says so)."""
        if self.patience is None or history.best_epoch is None or epoch - history.best_epoch < self.patience:
            return False
        history.stopped = "early stopping"
        history.message = f"no improvement of {self.name} for {self.patience} epochs"
        return True
