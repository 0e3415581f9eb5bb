"""mfkit — matrix factorization for recommender systems, the companion package of the mfkit book.

Modules follow the book's parts: :mod:`mfkit.data` (Chapter 1), :mod:`mfkit.metrics`, :mod:`mfkit.implicit`
(Chapters 2–4), :mod:`mfkit.explicit` (Chapters 5–6), :mod:`mfkit.neural` (Chapter 7), :mod:`mfkit.ranking`
(Chapter 9) and :mod:`mfkit.serving` (Chapter 10). Every model subclasses :class:`mfkit.base.Recommender` (one
interface: fit, score_users, predict, recommend, similar_items, save/load); :mod:`mfkit.training` holds the epoch
loop and the tuner they share; :mod:`mfkit.utils` device choice, seeding, threads and progress bars.
"""
__version__ = "0.1.0"  # before the imports: mfkit.base stores it in every saved model

from .base import NotFittedError, Recommender  # noqa: E402
from .utils import cpu_threads, get_device, progress, seed_everything, setup  # noqa: E402
