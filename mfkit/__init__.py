"""mfkit — matrix factorization for recommender systems, the companion package of the mfkit book.

Modules follow the book's parts: :mod:`mfkit.data` (Chapter 1), :mod:`mfkit.metrics`, :mod:`mfkit.implicit`
(Chapters 2–4), :mod:`mfkit.explicit` (Chapters 5–6), :mod:`mfkit.neural` (Chapter 7) and :mod:`mfkit.training`
(the loop they share). :mod:`mfkit.utils` holds device choice, seeding and progress bars.
"""
from .utils import cpu_threads, get_device, progress, seed_everything, setup

__version__ = "0.1.0"
