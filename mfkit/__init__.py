"""mfkit — matrix factorization for recommender systems, the companion package of the mfkit book.

One place per idea, in layers (a module imports only modules of lower layers): :mod:`mfkit.utils` (device,
seeding, threads, progress) and :mod:`mfkit.defaults` (settings chosen by the benchmarks); :mod:`mfkit.data`
(readers, :class:`~mfkit.data.Interactions`, splits, the generator) and :mod:`mfkit.observed` (seen pairs,
popularity); :mod:`mfkit.topk` (the one top-k, seen items excluded) and :mod:`mfkit.metrics`; :mod:`mfkit.als`
(the one ALS row solver); :mod:`mfkit.base` (the :class:`~mfkit.base.Recommender` interface: fit, score_users,
predict, recommend, similar_items, save/load, and the serving hooks fold_in, user_vectors, item_vectors) and :mod:`mfkit.training` (the epoch loop and the one tuner);
the models by family, :mod:`mfkit.implicit` (Chapters 2–4), :mod:`mfkit.explicit` (Chapters 5–6),
:mod:`mfkit.neural` (Chapter 7), :mod:`mfkit.ranking` (Chapter 9), :mod:`mfkit.spark` (Chapter 8); then
:mod:`mfkit.serving` (Chapter 10) and :mod:`mfkit.scale` (Chapter 8), which use models only through their hooks.
"""
__version__ = "0.1.0"  # before the imports: mfkit.base stores it in every saved model

from .base import NotFittedError, Recommender  # noqa: E402
from .utils import cpu_threads, get_device, progress, seed_everything, setup  # noqa: E402
