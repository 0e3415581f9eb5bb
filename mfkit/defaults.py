"""Chosen settings: what benchmarks selected on validation, in one place that chapters and benchmarks read.

Model modules hold models only; a setting chosen by a benchmark lives here, next to the record it came from, so a
re-run that changes the choice changes one file (the benchmark prints whether its selection still agrees).
Imports nothing of mfkit (the bottom layer, with :mod:`mfkit.utils`).

Used by: Chapter 7, ``benchmarks/neural_ml100k.py``, ``benchmarks/ranking_ml100k.py``.
"""
from __future__ import annotations

__all__ = ["CHOSEN_SETTINGS"]

#: The settings that ``benchmarks/neural_ml100k.py`` chose on validation, as its record
#: (``benchmarks/results/neural_ml100k.json``, key ``params``) holds them: the one place both the benchmark and
#: Chapter 7 read them from. Keyed by protocol, then model; ``n_epochs`` is the best validation epoch. The protocol's
#: shared keys (``task``, ``batch_size``, ``n_negatives``) are not repeated here. The benchmark re-runs the selection
#: and prints whether it still agrees with this dict; when it does not, update the dict and re-execute Chapter 7.
#: E1's NCF settings were selected on the validation part of split seed 0 only.
CHOSEN_SETTINGS: dict[str, dict[str, dict]] = {
    "I1": {
        "gmf": {"kind": "gmf", "n_factors": 32, "reg": 0.03, "lr": 0.01, "n_epochs": 12},
        "mlp": {"kind": "mlp", "layers": (128, 64, 32), "reg": 0.01, "lr": 0.005, "n_epochs": 9},
        "neumf": {"kind": "neumf", "n_factors": 32, "layers": (128, 64, 32), "reg": 0.02, "lr": 0.003,
                  "n_epochs": 1},
        "two_tower": {"n_factors": 64, "temperature": 0.2, "reg": 0.1, "lr": 0.005, "n_epochs": 4,
                      "batch_size": 1024, "n_uniform_negatives": 1024, "logq_correction": True},
    },
    "E1": {
        "gmf": {"kind": "gmf", "n_factors": 32, "reg": 0.1, "lr": 0.003, "n_epochs": 8},
        "mlp": {"kind": "mlp", "layers": (64, 32, 16), "reg": 0.3, "lr": 0.003, "n_epochs": 6},
        "neumf": {"kind": "neumf", "n_factors": 32, "layers": (64, 32, 16), "reg": 0.3, "lr": 0.001,
                  "n_epochs": 1},
    },
}
