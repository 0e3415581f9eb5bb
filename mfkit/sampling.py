"""Negative sampling: items a user has not interacted with, drawn by vectorised rejection (one contract).

Used by: BPR (:class:`mfkit.ranking.BPR`, uniform or popularity-weighted draws), NCF and two-tower training
(Chapter 7; He et al. 2017, Section 4.1: negatives drawn uniformly from the unobserved items, afresh each epoch),
sampled ranking metrics (:func:`mfkit.ranking.sampled_ranking_metrics`).
"""
from __future__ import annotations

import torch

__all__ = ["positive_keys", "sample_negatives"]


def positive_keys(user: torch.Tensor, item: torch.Tensor, n_items: int) -> torch.Tensor:
    """Sorted unique keys ``user * n_items + item`` of the observed pairs (what :func:`sample_negatives` avoids)."""
    return torch.unique(user.long() * n_items + item.long())  # torch.unique sorts


def _collisions(user: torch.Tensor, item: torch.Tensor, keys: torch.Tensor, n_items: int) -> torch.Tensor:
    """Positions whose (user, item) pair is among the sorted ``keys``."""
    if keys.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=user.device)
    cand = user * n_items + item
    pos = torch.searchsorted(keys, cand).clamp_(max=keys.numel() - 1)
    return torch.nonzero(keys[pos] == cand, as_tuple=True)[0]


def sample_negatives(user: torch.Tensor, keys: torch.Tensor, n_items: int, n_negatives: int = 1, *,
                     probabilities: torch.Tensor | None = None, generator: torch.Generator | None = None,
                     max_rounds: int = 100, return_collisions: bool = False):
    """Draw ``n_negatives`` items per entry of ``user`` among the items the user has *not* interacted with.

    All candidates are drawn at once on ``user``'s device (with ``generator``, on that device: a CPU generator and
    CPU users give the same negatives on every machine); those that hit a positive (a binary search in the sorted
    ``keys``) are redrawn, and only they, round by round.

    Parameters
    ----------
    user : LongTensor, shape (n,)
        The user of each draw.
    keys : LongTensor
        Sorted keys of every observed pair (:func:`positive_keys`).
    n_items : int
        Catalogue size.
    n_negatives : int
        Negatives per entry of ``user``.
    probabilities : (n_items,) tensor, optional
        Sampling distribution over items (uniform when None), e.g. proportional to popularity; the second half of
        the rounds draws uniformly (a popularity distribution may give a user's unobserved items zero mass).
    generator : torch.Generator, optional
    max_rounds : int
        Redraw rounds. The chance a uniform candidate still collides after ``r`` rounds is ``d**r`` for a user with
        a share ``d`` of the catalogue in train (``d < 0.3`` on MovieLens, so ``1e-50`` after 100 rounds).
    return_collisions : bool
        Return the number of draws still on a positive after the last round (0 in practice) instead of raising.

    Returns
    -------
    user, item : LongTensors of shape (n * n_negatives,)
        The user repeated ``n_negatives`` times (``repeat_interleave``) and the sampled items.
    n_collisions : int
        Only with ``return_collisions``.

    Raises
    ------
    ValueError
        ``n_negatives < 1``, or draws still on a positive after ``max_rounds`` (a user with every item).
    """
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    if keys.numel() and n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    neg_user = user.long()
    if n_negatives > 1:
        neg_user = neg_user.repeat_interleave(n_negatives)
    device = neg_user.device

    def draw(n: int, uniform: bool) -> torch.Tensor:
        if uniform or probabilities is None:
            return torch.randint(n_items, (n,), device=device, generator=generator)
        return torch.multinomial(probabilities, n, replacement=True, generator=generator).to(device)

    item = draw(len(neg_user), False)
    todo = _collisions(neg_user, item, keys, n_items)
    for round_ in range(max_rounds):
        if todo.numel() == 0:
            break
        item[todo] = draw(len(todo), round_ >= max_rounds // 2)
        todo = todo[_collisions(neg_user[todo], item[todo], keys, n_items)]
    if return_collisions:
        return neg_user, item, int(todo.numel())
    if todo.numel():
        raise ValueError(f"a user has interacted with every item (e.g. user {int(neg_user[todo[0]])}), so no negative "
                         f"can be sampled for them ({todo.numel()} draw(s) left after {max_rounds} rounds)")
    return neg_user, item
