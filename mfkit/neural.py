"""Neural collaborative filtering (GMF, MLP, NeuMF) and the two-tower retrieval model.

Used by: Chapter 7 (``book/07_neural_cf.ipynb``) and ``benchmarks/neural_ml100k.py``.

* NCF — Xiangnan He, Lizi Liao, Hanwang Zhang, Liqiang Nie, Xia Hu and Tat-Seng Chua, "Neural Collaborative
  Filtering", WWW 2017: a generalised matrix factorization (GMF), a multi-layer perceptron over the concatenated user
  and item embeddings (MLP), and their fusion (NeuMF), trained on ratings (squared error) or on implicit feedback
  (binary cross-entropy with sampled negatives).
* Two-tower — Xinyang Yi, Ji Yang, Lichan Hong, Derek Zhiyuan Cheng, Lukasz Heldt, Aditee Kumthekar, Zhe Zhao, Li Wei
  and Ed Chi, "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations", RecSys 2019 (in-batch
  softmax with the logQ correction); Paul Covington, Jay Adams and Emre Sargin, "Deep Neural Networks for YouTube
  Recommendations", RecSys 2016 (a retrieval model whose item vectors are precomputed and searched by dot product).

Everything works on index tensors that live on the model's device; batches are index slices made by
:func:`mfkit.training.minibatches` (no DataLoader, no per-row Python).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .base import Recommender, check_choice, check_float, check_int
from .data import Interactions
from .metrics import ranking_metrics, rmse
from .training import check_optimizer, minibatches, train_loop
from .utils import cpu_threads, get_device

__all__ = ["GMF", "MLP", "NeuMF", "Tower", "NCF", "TwoTower", "sample_negatives", "in_batch_softmax_loss",
           "positive_keys", "mlp_learns_dot_product"]

# Upper bound on the floats one chunk of all-items MLP scoring materialises (64 MB in fp32): keeps scoring a whole
# catalogue for a batch of users within laptop memory without a Python loop per user.
_SCORE_CHUNK_FLOATS = 1 << 24


def _init_weights(module: nn.Module, generator: torch.Generator, embedding_std: float = 0.01) -> None:
    """Initialise as He et al. (2017) do: embeddings ~ N(0, 0.01^2), layers Glorot-uniform, biases zero.

    An explicit generator makes the initial weights depend on ``random_state`` only, not on the global torch seed.
    """
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, embedding_std, generator=generator)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _check_layers(layers: Sequence[int], what: str) -> tuple[int, ...]:
    layers = tuple(int(x) for x in layers)
    if any(x < 1 for x in layers):
        raise ValueError(f"{what} must be positive integers, got {layers}")
    return layers


def _rows(table: nn.Embedding, idx: torch.Tensor) -> torch.Tensor:
    """Gather embedding rows. ``index_select`` rather than ``table(idx)``: its backward (``index_add_``) is about twice
    as fast on the CPU as ``embedding_dense_backward``, the largest cost of a training step here."""
    return table.weight.index_select(0, idx)


# ---------------------------------------------------------------------------------------------------------------------
# The three NCF scoring networks. Each exposes ``lookup(u, i)`` (the embedding rows a batch touches, gathered once and
# reused by the regulariser), ``features_from(rows)`` (the last hidden layer, what NeuMF concatenates),
# ``forward(u, i)`` (one score per pair) and ``score_all(u)`` (users x all items, vectorised).
# ---------------------------------------------------------------------------------------------------------------------
class _PairScorer(nn.Module):
    """What the three NCF networks share: score = output layer on ``features_from(lookup(user, item))``."""

    def lookup(self, user: torch.Tensor, item: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _rows(self.user_embedding, user), _rows(self.item_embedding, item)

    def forward_from(self, rows: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.output(self.features_from(rows)).squeeze(-1)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        return self.forward_from(self.lookup(user, item))


class GMF(_PairScorer):
    r"""Generalised matrix factorization: :math:`\hat y_{ui} = h^\top (p_u \odot q_i) + b`.

    With :math:`h = \mathbf 1` and :math:`b = 0` this is the plain dot product of matrix factorization
    (He et al. 2017, Section 3.2). Used by: Chapter 7.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the embedding tables.
    n_factors : int
        Embedding dimension.
    """

    def __init__(self, n_users: int, n_items: int, n_factors: int = 32):
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, n_factors)
        self.item_embedding = nn.Embedding(n_items, n_factors)
        self.output = nn.Linear(n_factors, 1)

    @property
    def out_features(self) -> int:
        return self.user_embedding.embedding_dim

    def features_from(self, rows: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Element-wise product ``p_u * q_i``, shape ``(batch, n_factors)``."""
        return rows[0] * rows[1]

    def score_all(self, user: torch.Tensor, weight: torch.Tensor | None = None,
                  bias: torch.Tensor | float | None = None) -> torch.Tensor:
        """Scores of ``user`` against every item, ``(n, n_items)``: one matrix product, ``(p_u * h) Q^T + b``.

        ``weight``/``bias`` replace the output layer's (NeuMF passes its own slice of the fused output layer).
        """
        if weight is None:
            weight, bias = self.output.weight[0], self.output.bias[0]
        return (_rows(self.user_embedding, user) * weight) @ self.item_embedding.weight.T + (0.0 if bias is None
                                                                                           else bias)


class MLP(_PairScorer):
    r"""NCF's multi-layer perceptron over the concatenation :math:`[p_u; q_i]`.

    ``layers[0]`` is the width of the concatenated embeddings (each embedding is ``layers[0] // 2`` wide), the later
    entries are the hidden ReLU layers, followed by a linear output (He et al. 2017, Section 3.3: "tower" layers
    ``(64, 32, 16)`` means 32-wide embeddings, then hidden layers of 32 and 16 units). Used by: Chapter 7.
    """

    def __init__(self, n_users: int, n_items: int, layers: Sequence[int] = (64, 32, 16)):
        super().__init__()
        layers = _check_layers(layers, "layers")
        if len(layers) < 2 or layers[0] % 2:
            raise ValueError(f"layers must have at least two entries and an even first one (the concatenated "
                             f"embedding width), got {layers}")
        half = layers[0] // 2
        self.user_embedding = nn.Embedding(n_users, half)
        self.item_embedding = nn.Embedding(n_items, half)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(layers[:-1], layers[1:]))
        self.output = nn.Linear(layers[-1], 1)

    @property
    def out_features(self) -> int:
        return self.hidden[-1].out_features

    def _tail(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden[1:]:
            h = torch.relu(layer(h))
        return h

    def features_from(self, rows: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The last hidden layer, shape ``(batch, layers[-1])``."""
        z = torch.cat(rows, dim=-1)
        return self._tail(torch.relu(self.hidden[0](z)))

    def score_all(self, user: torch.Tensor, weight: torch.Tensor | None = None,
                  bias: torch.Tensor | float | None = None) -> torch.Tensor:
        """Scores of ``user`` against every item, ``(n, n_items)``.

        The first layer acts on a concatenation, so it splits: ``W [p; q] = W_u p + W_i q``. Users and items are each
        projected once and the pairs are formed by broadcasting, in chunks of users that bound the memory.
        """
        if weight is None:
            weight, bias = self.output.weight[0], self.output.bias[0]
        first = self.hidden[0]
        half = self.user_embedding.embedding_dim
        user_part = _rows(self.user_embedding, user) @ first.weight[:, :half].T + first.bias  # (n, h1)
        item_part = self.item_embedding.weight @ first.weight[:, half:].T  # (n_items, h1)
        n_items, width = item_part.shape
        chunk = max(1, _SCORE_CHUNK_FLOATS // max(1, n_items * width))
        out = [self._tail(torch.relu(up[:, None, :] + item_part[None, :, :])) @ weight
               for up in user_part.split(chunk)]
        scores = torch.cat(out) if out else user_part.new_zeros((0, n_items))
        return scores + (0.0 if bias is None else bias)


class NeuMF(_PairScorer):
    r"""NeuMF: GMF and MLP with separate embeddings, their last layers concatenated into one output layer.

    :math:`\hat y_{ui} = h^\top [p^G_u \odot q^G_i;\ \phi_{MLP}(p^M_u, q^M_i)] + b` (He et al. 2017, Section 3.4).
    :meth:`load_pretrained` sets the weights from trained GMF and MLP networks, as the paper does. Used by: Chapter 7.
    """

    def __init__(self, n_users: int, n_items: int, n_factors: int = 32, layers: Sequence[int] = (64, 32, 16)):
        super().__init__()
        self.gmf = GMF(n_users, n_items, n_factors)
        self.mlp = MLP(n_users, n_items, layers)
        # The sub-networks' own output layers are unused here (kept so pretrained weights load one-to-one).
        self.output = nn.Linear(self.gmf.out_features + self.mlp.out_features, 1)

    @property
    def out_features(self) -> int:
        return self.output.in_features

    def lookup(self, user: torch.Tensor, item: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.gmf.lookup(user, item) + self.mlp.lookup(user, item)

    def features_from(self, rows: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.cat([self.gmf.features_from(rows[:2]), self.mlp.features_from(rows[2:])], dim=-1)

    def score_all(self, user: torch.Tensor, weight: torch.Tensor | None = None,
                  bias: torch.Tensor | float | None = None) -> torch.Tensor:
        if weight is None:
            weight, bias = self.output.weight[0], self.output.bias[0]
        k = self.gmf.out_features
        return self.gmf.score_all(user, weight[:k]) + self.mlp.score_all(user, weight[k:], bias)

    @torch.no_grad()
    def load_pretrained(self, gmf: GMF, mlp: MLP, alpha: float = 0.5) -> "NeuMF":
        """Copy the weights of trained GMF and MLP networks; the output layer is ``[alpha h_GMF, (1-alpha) h_MLP]``.

        He et al. (2017, Section 3.4.1) pretrain both parts and fuse them with ``alpha = 0.5``.
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.gmf.load_state_dict(gmf.state_dict())
        self.mlp.load_state_dict(mlp.state_dict())
        self.output.weight.copy_(torch.cat([alpha * gmf.output.weight, (1 - alpha) * mlp.output.weight], dim=1))
        self.output.bias.copy_(alpha * gmf.output.bias + (1 - alpha) * mlp.output.bias)
        return self


class _RatingNet(nn.Module):
    """A scoring network plus global mean and user/item biases (the rating task), or the network alone (implicit)."""

    def __init__(self, core: nn.Module, n_users: int, n_items: int, biases: bool, global_mean: float = 0.0):
        super().__init__()
        self.core = core
        self.biases = biases
        if biases:
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))

    def forward(self, user, item, with_penalty: bool = False):
        """Scores of the pairs; with ``with_penalty`` also the squared norm of the embedding (and bias) rows the
        batch touches, per example (the usual MF regulariser), from the same gathered rows."""
        rows = self.core.lookup(user, item)
        out = self.core.forward_from(rows)
        if self.biases:
            bu, bi = _rows(self.user_bias, user)[:, 0], _rows(self.item_bias, item)[:, 0]
            out = out + self.global_mean + bu + bi
            rows = rows + (bu, bi)
        if not with_penalty:
            return out
        return out, sum(r.pow(2).sum() for r in rows) / len(user)

    def score_all(self, user):
        out = self.core.score_all(user)
        if self.biases:
            out = out + self.global_mean + _rows(self.user_bias, user) + self.item_bias.weight[:, 0]
        return out


# ---------------------------------------------------------------------------------------------------------------------
# Negative sampling and the in-batch softmax loss
# ---------------------------------------------------------------------------------------------------------------------
def positive_keys(user: torch.Tensor, item: torch.Tensor, n_items: int) -> torch.Tensor:
    """Sorted unique keys ``user * n_items + item`` of the observed pairs (what :func:`sample_negatives` avoids)."""
    return torch.unique(user.long() * n_items + item.long())  # torch.unique sorts


def sample_negatives(user: torch.Tensor, keys: torch.Tensor, n_items: int, n_negatives: int = 4,
                     generator: torch.Generator | None = None, max_rounds: int = 100,
                     return_collisions: bool = False):
    """Draw ``n_negatives`` items per entry of ``user``, uniformly among the items the user has *not* interacted with.

    Vectorised rejection sampling on ``user``'s device: all candidates are drawn at once, those that hit a positive
    (a binary search in the sorted ``keys``) are redrawn, and only they, until none is left. He et al. (2017,
    Section 4.1) sample negatives uniformly from the unobserved items, afresh each epoch. Used by: Chapter 7.

    Parameters
    ----------
    user : LongTensor, shape (n,)
        The user of each positive.
    keys : LongTensor
        Sorted keys of every observed pair, from :func:`positive_keys`.
    n_items : int
        Catalogue size.
    n_negatives : int
        Negatives per entry of ``user``.
    generator : torch.Generator, optional
        On ``user``'s device.
    max_rounds : int
        Redraw rounds. The chance a candidate still collides after ``r`` rounds is ``d**r`` for a user with a share
        ``d`` of the catalogue in train (``d < 0.3`` on MovieLens, so ``1e-50`` after 100 rounds); whatever collides
        after the last round is kept (``return_collisions`` reports how many).
    return_collisions : bool
        Also return the number of sampled pairs that are still positives (0 in practice).

    Returns
    -------
    user, item : LongTensors of shape (n * n_negatives,)
        The user repeated ``n_negatives`` times (``repeat_interleave``) and the sampled items.
    n_collisions : int
        Only with ``return_collisions``.

    Raises
    ------
    ValueError
        If ``n_negatives < 1`` or a user has interacted with every item (no negative exists).
    """
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    if keys.numel() and n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    user = user.long()
    device = user.device
    # A user with every item has no negative: refuse rather than loop for ever.
    per_user = torch.bincount(torch.div(keys, n_items, rounding_mode="floor"))
    if per_user.numel() and int(per_user.max()) >= n_items:
        raise ValueError("a user has interacted with every item, so no negative can be sampled for them")
    neg_user = user.repeat_interleave(n_negatives)
    item = torch.randint(n_items, neg_user.shape, device=device, generator=generator)
    todo = _collisions(neg_user, item, keys, n_items)
    for _ in range(max_rounds):
        if todo.numel() == 0:
            break
        item[todo] = torch.randint(n_items, todo.shape, device=device, generator=generator)
        still = _collisions(neg_user[todo], item[todo], keys, n_items)
        todo = todo[still]
    if return_collisions:
        return neg_user, item, int(todo.numel())
    return neg_user, item


def _collisions(user: torch.Tensor, item: torch.Tensor, keys: torch.Tensor, n_items: int) -> torch.Tensor:
    """Positions whose (user, item) pair is among the sorted ``keys``."""
    if keys.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=user.device)
    cand = user * n_items + item
    pos = torch.searchsorted(keys, cand).clamp_(max=keys.numel() - 1)
    return torch.nonzero(keys[pos] == cand, as_tuple=True)[0]


def in_batch_softmax_loss(user_vectors: torch.Tensor, item_vectors: torch.Tensor, temperature: float = 1.0,
                          item_log_q: torch.Tensor | None = None, item_ids: torch.Tensor | None = None
                          ) -> torch.Tensor:
    r"""Sampled-softmax loss with the other items of the batch as negatives, optionally logQ-corrected.

    Row ``b`` scores user ``b`` against every candidate item, :math:`s_{bj} = \langle u_b, v_j\rangle / \tau`; the
    correct class is ``j = b``. The candidates are the batch's own items (rows ``0..B-1`` of ``item_vectors``), and
    optionally extra sampled items after them (mixed negative sampling, Yang et al. 2020). Items enter a batch with
    probability proportional to their popularity, so in-batch negatives over-penalise popular items; Yi et al. (2019,
    eq. 3) subtract :math:`\log Q_j`, the log sampling probability of candidate ``j``, from each logit to correct
    it. When ``item_ids`` is given, candidates equal to the row's own positive item ("accidental hits", other than
    the positive itself) are masked out.

    Parameters
    ----------
    user_vectors : Tensor, shape (B, d)
        User-tower outputs for the batch's positive pairs.
    item_vectors : Tensor, shape (B + M, d)
        Item-tower outputs: the batch's positive items, then ``M >= 0`` extra negatives.
    temperature : float
        Divides the logits (lower is sharper).
    item_log_q : Tensor, shape (B + M,), optional
        ``log Q`` of each candidate (constants common to all candidates cancel).
    item_ids : LongTensor, shape (B + M,), optional
        Item index of each candidate, to mask accidental hits.

    Returns
    -------
    Tensor
        Mean cross-entropy over the batch. Used by: Chapter 7 (two-tower model).
    """
    n = len(user_vectors)
    if user_vectors.dim() != 2 or item_vectors.dim() != 2 or len(item_vectors) < n or \
            user_vectors.shape[1] != item_vectors.shape[1]:
        raise ValueError(f"user_vectors must be (batch, d) and item_vectors (batch + extra, d), got "
                         f"{tuple(user_vectors.shape)} and {tuple(item_vectors.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = user_vectors @ item_vectors.T / temperature
    if item_log_q is not None:
        logits = logits - item_log_q[None, :]
    target = torch.arange(n, device=logits.device)
    if item_ids is not None:
        same = item_ids[:n, None] == item_ids[None, :]
        same[target, target] = False
        logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, target)


# ---------------------------------------------------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------------------------------------------------
class _NeuralRecommender(Recommender):
    """What NCF and the two-tower model share: generators for shuffling and sampling, seeded afresh at every fit
    from ``random_state`` (so a second fit repeats the first), on the CPU and on the model's device."""

    def _seed_generators(self) -> None:
        self._cpu_gen = torch.Generator().manual_seed(int(self.random_state))
        self._dev_gen = torch.Generator(device=self.device_).manual_seed(int(self.random_state))


_KINDS = ("gmf", "mlp", "neumf")
_TASKS = ("rating", "implicit")


class NCF(_NeuralRecommender):
    """Neural collaborative filtering (He et al. 2017): GMF, MLP or NeuMF, for ratings or implicit feedback.

    Used by: Chapter 7 and ``benchmarks/neural_ml100k.py``.

    Parameters
    ----------
    kind : {"gmf", "mlp", "neumf"}
        The scoring network: :class:`GMF`, :class:`MLP` or :class:`NeuMF`.
    task : {"rating", "implicit"}
        ``"rating"``: squared error on the ratings, with a global mean and user/item biases added to the network's
        output (the same terms biased MF has, so the comparison with it is fair). ``"implicit"``: binary
        cross-entropy on every training pair (label 1) and ``n_negatives`` unobserved items per pair (label 0),
        resampled each epoch.
    n_factors : int
        GMF embedding size (GMF and the GMF part of NeuMF).
    layers : tuple of int
        MLP widths; ``layers[0]`` is the concatenated embedding width (see :class:`MLP`).
    n_negatives : int
        Sampled negatives per positive (implicit task).
    lr, reg : float
        Learning rate; L2 penalty on the embedding rows (and biases) of each batch, per example.
    n_epochs, batch_size : int
        Passes over the training rows (positives plus negatives for the implicit task) and rows per step.
    optimizer : str
        A name from :data:`mfkit.training.OPTIMIZERS`.
    pretrained : tuple (GMF, MLP) of fitted NCF estimators, optional
        For ``kind="neumf"``: initialise from them (He et al. 2017, Section 3.4.1); the paper then trains with plain
        SGD, we keep the chosen optimizer.
    alpha : float
        Weight of GMF in the fused output layer when ``pretrained`` is given.
    device : str or torch.device, optional
        None picks CUDA when available.
    random_state : int
        Seeds initialisation, shuffling and negative sampling.
    show_progress : bool, optional
        Progress bar over epochs (default: on unless ``MFKIT_PROGRESS=0``).

    Attributes
    ----------
    net_ : torch.nn.Module
        The trained network.
    history_ : mfkit.training.History
        Loss (and validation metric) per epoch.
    fit_seconds_ : float
        Training time of :meth:`fit` (``history_``'s last ``seconds``), validation excluded.
    """

    def __init__(self, kind: str = "neumf", task: str = "implicit", n_factors: int = 32,
                 layers: Sequence[int] = (64, 32, 16), n_negatives: int = 4, lr: float = 0.001, reg: float = 0.0,
                 n_epochs: int = 20, batch_size: int = 256, optimizer: str = "adam",
                 pretrained: tuple["NCF", "NCF"] | None = None, alpha: float = 0.5, device=None,
                 random_state: int = 0, show_progress: bool | None = None):
        self.kind, self.task = check_choice("kind", kind, _KINDS), check_choice("task", task, _TASKS)
        self.n_factors, self.layers = check_int("n_factors", n_factors), _check_layers(layers, "layers")
        if kind != "gmf" and (len(self.layers) < 2 or self.layers[0] % 2):
            raise ValueError(f"layers must have at least two entries and an even first one (the concatenated "
                             f"embedding width), got {self.layers}")
        self.n_negatives, self.n_epochs = check_int("n_negatives", n_negatives), check_int("n_epochs", n_epochs)
        self.batch_size, self.optimizer = check_int("batch_size", batch_size), optimizer
        self.lr, self.reg = check_float("lr", lr, strict=True), check_float("reg", reg)
        check_optimizer(optimizer)
        if pretrained is not None and kind != "neumf":
            raise ValueError("pretrained=(gmf, mlp) only applies to kind='neumf'")
        self.pretrained, self.alpha = pretrained, check_float("alpha", alpha)
        if self.alpha > 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.device, self.random_state = device, check_int("random_state", random_state, None)
        self.show_progress = show_progress

    @property
    def requires_ratings(self) -> bool:
        return self.task == "rating"

    @property
    def default_metric(self) -> str:
        return "rmse" if self.task == "rating" else "ndcg"

    # -- building --------------------------------------------------------------------------------------------------
    def _build(self, n_users: int, n_items: int, global_mean: float) -> nn.Module:
        if self.kind == "gmf":
            core = GMF(n_users, n_items, self.n_factors)
        elif self.kind == "mlp":
            core = MLP(n_users, n_items, self.layers)
        else:
            core = NeuMF(n_users, n_items, self.n_factors, self.layers)
        net = _RatingNet(core, n_users, n_items, biases=self.task == "rating", global_mean=global_mean)
        _init_weights(net, torch.Generator().manual_seed(int(self.random_state)))
        if net.biases:
            nn.init.zeros_(net.user_bias.weight)
            nn.init.zeros_(net.item_bias.weight)
        if self.pretrained is not None:
            gmf, mlp = self.pretrained
            for est, want in ((gmf, "gmf"), (mlp, "mlp")):
                if not isinstance(est, NCF) or est.kind != want or not est.is_fitted:
                    raise ValueError(f"pretrained must be (fitted NCF kind='gmf', fitted NCF kind='mlp'); "
                                     f"got {est!r} where a fitted {want!r} was expected")
            core.load_pretrained(gmf.net_.core, mlp.net_.core, self.alpha)  # copy_ moves across devices
            if net.biases:  # the biases of the two are averaged like the output layer
                with torch.no_grad():
                    for name in ("user_bias", "item_bias"):
                        getattr(net, name).weight.copy_(
                            self.alpha * getattr(gmf.net_, name).weight
                            + (1 - self.alpha) * getattr(mlp.net_, name).weight.to(gmf.device_))
        return net.to(self.device_)

    # -- training ----------------------------------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, patience: int | None = None) -> None:
        self._seed_generators()
        n_users, n_items = train.n_users, train.n_items
        user, item, rating = train.to_tensors(self.device_)
        global_mean = float(train.rating.mean()) if self.task == "rating" else 0.0
        self.net_ = net = self._build(n_users, n_items, global_mean)
        self._seen_user = torch.zeros(n_users, dtype=torch.bool, device=self.device_)
        self._seen_item = torch.zeros(n_items, dtype=torch.bool, device=self.device_)
        self._seen_user[user] = True
        self._seen_item[item] = True

        if self.task == "rating":
            epoch_data = {"user": user, "item": item, "target": rating}

            def batches(epoch):
                return minibatches(len(user), self.batch_size, self.device_, self._cpu_gen)

            def loss_fn(idx):
                u, i = epoch_data["user"][idx], epoch_data["item"][idx]
                pred, penalty = net(u, i, with_penalty=True)
                return F.mse_loss(pred, epoch_data["target"][idx]) + self.reg * penalty
        else:
            keys = positive_keys(user, item, n_items)
            # Duplicate pairs would count twice as positives; the keys are the de-duplicated pairs.
            pos_user, pos_item = torch.div(keys, n_items, rounding_mode="floor"), keys % n_items
            ones = torch.ones(len(keys), device=self.device_)
            zeros = torch.zeros(len(keys) * self.n_negatives, device=self.device_)
            epoch_data = {}

            def batches(epoch):
                neg_user, neg_item = sample_negatives(pos_user, keys, n_items, self.n_negatives, self._dev_gen)
                epoch_data.update(user=torch.cat([pos_user, neg_user]), item=torch.cat([pos_item, neg_item]),
                                  target=torch.cat([ones, zeros]))
                return minibatches(len(epoch_data["user"]), self.batch_size, self.device_, self._cpu_gen)

            def loss_fn(idx):
                u, i = epoch_data["user"][idx], epoch_data["item"][idx]
                logits, penalty = net(u, i, with_penalty=True)
                return F.binary_cross_entropy_with_logits(logits, epoch_data["target"][idx]) + self.reg * penalty

        evaluate, higher = self._validator(train, valid)
        net.train()
        with cpu_threads(1, self.device_):
            self.history_ = train_loop(loss_fn, net, optimizer=self.optimizer, lr=self.lr, n_epochs=self.n_epochs,
                                       batches=batches, evaluate=evaluate, higher_is_better=higher, patience=patience,
                                       show_progress=self.show_progress, desc=f"NCF-{self.kind}",
                                       divergence_hint="Lower lr (Adam: try 1e-3) or raise reg.")
        net.eval()
        self.fit_seconds_ = self.history_.records[-1]["seconds"] if self.history_.records else 0.0

    def _validator(self, train, valid):
        if valid is None:
            return None, True
        if self.task == "rating":
            vu, vi, vr = valid.to_tensors(self.device_)
            return (lambda: rmse(self.predict(vu, vi), vr, clip=(1, 5))), False
        return (lambda: ranking_metrics(self, train, valid, k=10, device=self.device_)["ndcg"]), True

    # -- prediction ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, users, items) -> torch.Tensor:
        """Scores of (user, item) pairs of dense indices: predicted ratings (rating task) or logits (implicit).

        For the rating task, a user or item absent from the training set gets the global mean plus whatever bias is
        known (protocol E1), not the output of an untrained embedding.
        """
        u, i = self._user_index(users), self._item_index(items)
        if u.shape != i.shape:
            raise ValueError(f"users and items must have one length, got {u.numel()} and {i.numel()}")
        was_training = self.net_.training
        self.net_.eval()
        out = torch.cat([self.net_(a, b) for a, b in zip(u.split(1 << 16), i.split(1 << 16))]) if len(u) else \
            torch.zeros(0, device=self.device_)
        self.net_.train(was_training)
        if self.task == "rating":
            su, si = self._seen_user[u], self._seen_item[i]
            fallback = (self.net_.global_mean + _rows(self.net_.user_bias, u)[:, 0] * su
                        + _rows(self.net_.item_bias, i)[:, 0] * si)
            out = torch.where(su & si, out, fallback)
        return out

    @torch.no_grad()
    def score_users(self, users) -> torch.Tensor:
        """Scores of every item for each user in ``users``, shape ``(n, n_items)`` (for ranking and top-k).

        The same values as :meth:`predict`, the unseen-user/item fallback of the rating task included.
        """
        u = self._user_index(users)
        out = self.net_.score_all(u)
        if self.task == "rating":
            su, si = self._seen_user[u][:, None], self._seen_item[None, :]
            fallback = (self.net_.global_mean + _rows(self.net_.user_bias, u)[:, 0, None] * su
                        + self.net_.item_bias.weight[:, 0][None, :] * si)
            out = torch.where(su & si, out, fallback)
        return out

    def _item_vectors(self) -> torch.Tensor:
        if self.kind != "gmf":
            raise TypeError(f"NCF(kind={self.kind!r}) scores pairs through an MLP: its item embeddings are not "
                            "compared by cosine; similar_items needs kind='gmf'")
        return self.net_.core.item_embedding.weight

    def _get_state(self) -> dict:
        state = {"net." + k: v for k, v in self.net_.state_dict().items()}
        return {**state, "seen_user": self._seen_user, "seen_item": self._seen_item}

    def _set_state(self, state: dict) -> None:
        self._seen_user, self._seen_item = state.pop("seen_user"), state.pop("seen_item")
        self._seed_generators()
        self.net_ = self._build(self.train_.n_users, self.train_.n_items, 0.0)
        self.net_.load_state_dict({k[4:]: v for k, v in state.items()})
        self.net_.eval()


class Tower(nn.Module):
    """One tower of a two-tower model: an embedding table, then optional ReLU layers and a linear projection.

    ``layers=()`` leaves the embedding as the output (the two-tower model is then matrix factorization trained with a
    softmax loss). Used by: Chapter 7.
    """

    def __init__(self, n: int, n_factors: int, layers: Sequence[int] = ()):
        super().__init__()
        layers = _check_layers(layers, "tower_layers")
        self.embedding = nn.Embedding(n, n_factors)
        widths = (n_factors,) + layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    @property
    def out_features(self) -> int:
        return self.layers[-1].out_features if len(self.layers) else self.embedding.embedding_dim

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.project(_rows(self.embedding, idx))

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """The layers on top of gathered embedding rows ``h``."""
        for j, layer in enumerate(self.layers):
            h = layer(h)
            if j < len(self.layers) - 1:  # no activation on the last layer: its output is the vector dot-producted
                h = torch.relu(h)
        return h


class _TwoTowerNet(nn.Module):
    def __init__(self, n_users, n_items, n_factors, tower_layers, normalize):
        super().__init__()
        self.user_tower = Tower(n_users, n_factors, tower_layers)
        self.item_tower = Tower(n_items, n_factors, tower_layers)
        self.normalize = normalize

    def _finish(self, v):
        return F.normalize(v, dim=-1) if self.normalize else v

    def users(self, idx):
        return self._finish(self.user_tower(idx))

    def items(self, idx):
        return self._finish(self.item_tower(idx))

    def batch(self, user, item):
        """User and item vectors of a batch of pairs, and the squared norm of their embedding rows per pair."""
        eu, ei = _rows(self.user_tower.embedding, user), _rows(self.item_tower.embedding, item)
        penalty = (eu.pow(2).sum() + ei.pow(2).sum()) / len(user)
        return self._finish(self.user_tower.project(eu)), self._finish(self.item_tower.project(ei)), penalty


class TwoTower(_NeuralRecommender):
    """Two-tower retrieval model: user and item towers scored by a dot product, trained with in-batch softmax.

    Each batch holds ``batch_size`` observed (user, item) pairs; every user is scored against all the batch's items
    and the loss is the softmax cross-entropy of its own item (:func:`in_batch_softmax_loss`), with Yi et al.'s
    (2019) logQ correction when ``logq_correction`` is on (``Q`` = the item's share of the training pairs). After
    training the item tower is run once for the whole catalogue (:meth:`item_vectors`), so recommending is one matrix
    product — the step that approximate nearest-neighbour search replaces in production (Covington et al. 2016).

    Used by: Chapter 7 and ``benchmarks/neural_ml100k.py``.

    Parameters
    ----------
    n_factors : int
        Embedding size of both towers.
    tower_layers : tuple of int
        Widths of the layers after each embedding; ``()`` for none. The last width is the vector size.
    temperature : float
        Divides the logits during training.
    logq_correction : bool
        Subtract ``log Q(item)`` from the in-batch logits (Yi et al. 2019).
    normalize : bool
        L2-normalise the tower outputs (cosine similarity; Yi et al. do so, with a temperature).
    remove_accidental_hits : bool
        Mask in-batch negatives that are the row's own positive item.
    n_uniform_negatives : int
        Extra negatives per batch drawn uniformly from the catalogue and shared by all rows (mixed negative
        sampling, Yang et al. 2020, "Mixed Negative Sampling for Learning Two-tower Neural Networks in
        Recommendations"): rare items seldom appear in a batch, so without them their scores are barely trained.
        With the correction, ``log Q`` becomes the log of each candidate's expected count,
        ``batch_size * Q_in_batch + n_uniform_negatives / n_items``.
    lr, reg, n_epochs, batch_size, optimizer :
        As in :class:`NCF`; ``reg`` is the L2 penalty on the batch's embedding rows.
    device, random_state, show_progress :
        As in :class:`NCF`.
    """

    def __init__(self, n_factors: int = 64, tower_layers: Sequence[int] = (), temperature: float = 0.1,
                 logq_correction: bool = True, normalize: bool = False, remove_accidental_hits: bool = True,
                 n_uniform_negatives: int = 0,
                 lr: float = 0.005, reg: float = 0.0, n_epochs: int = 20, batch_size: int = 1024,
                 optimizer: str = "adam", device=None, random_state: int = 0, show_progress: bool | None = None):
        self.n_factors, self.tower_layers = check_int("n_factors", n_factors), _check_layers(tower_layers,
                                                                                               "tower_layers")
        self.temperature = check_float("temperature", temperature, strict=True)
        self.logq_correction, self.normalize = bool(logq_correction), bool(normalize)
        self.remove_accidental_hits = bool(remove_accidental_hits)
        self.n_uniform_negatives = check_int("n_uniform_negatives", n_uniform_negatives, 0)
        self.lr, self.reg = check_float("lr", lr, strict=True), check_float("reg", reg)
        self.n_epochs = check_int("n_epochs", n_epochs)
        self.batch_size = check_int("batch_size", batch_size)
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2: the other items of a batch are the negatives")
        check_optimizer(optimizer)
        self.optimizer, self.show_progress = optimizer, show_progress
        self.device, self.random_state = device, check_int("random_state", random_state, None)

    def _fit(self, train: Interactions, valid: Interactions | None, patience: int | None = None) -> None:
        self._seed_generators()
        n_items = train.n_items
        keys = positive_keys(*train.to_tensors(self.device_)[:2], n_items)
        user, item = torch.div(keys, n_items, rounding_mode="floor"), keys % n_items
        counts = torch.bincount(item, minlength=n_items).float()
        # expected number of times each item is a candidate column of one batch: in-batch plus uniform draws
        n_extra = self.n_uniform_negatives
        log_q = torch.log(self.batch_size * counts / counts.sum() + n_extra / n_items)
        self.net_ = net = _TwoTowerNet(train.n_users, n_items, self.n_factors, self.tower_layers, self.normalize)
        _init_weights(net, torch.Generator().manual_seed(int(self.random_state)), embedding_std=0.1)
        net.to(self.device_)
        self._item_cache = None

        def batches(epoch):
            self._item_cache = None  # the towers change: the cached item vectors are stale
            return minibatches(len(user), self.batch_size, self.device_, self._cpu_gen)

        def loss_fn(idx):
            u, i = user[idx], item[idx]
            if n_extra:
                extra = torch.randint(n_items, (n_extra,), device=self.device_, generator=self._dev_gen)
                i = torch.cat([i, extra])
            user_vecs, item_vecs, penalty = net.batch(u, i)
            loss = in_batch_softmax_loss(user_vecs, item_vecs, self.temperature,
                                         log_q[i] if self.logq_correction else None,
                                         i if self.remove_accidental_hits else None)
            return loss + self.reg * penalty

        evaluate = None
        if valid is not None:

            def evaluate():
                self._item_cache = None
                return ranking_metrics(self, train, valid, k=10, device=self.device_)["ndcg"]

        net.train()
        with cpu_threads(1, self.device_):
            self.history_ = train_loop(loss_fn, net, optimizer=self.optimizer, lr=self.lr, n_epochs=self.n_epochs,
                                       batches=batches, evaluate=evaluate, higher_is_better=True, patience=patience,
                                       show_progress=self.show_progress, desc="two-tower",
                                       divergence_hint="Lower lr or raise the temperature.")
        net.eval()
        self._item_cache = None  # train_loop may have restored the best epoch's weights
        self.fit_seconds_ = self.history_.records[-1]["seconds"] if self.history_.records else 0.0

    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor:
        """The item tower's output for the whole catalogue, ``(n_items, d)``, computed once and cached."""
        self._check_fitted()
        if self._item_cache is None:
            self._item_cache = self.net_.items(torch.arange(self.train_.n_items, device=self.device_))
        return self._item_cache

    @torch.no_grad()
    def user_vectors(self, users=None) -> torch.Tensor:
        """The user tower's output for dense user indices (default all), ``(n, d)``."""
        self._check_fitted()
        u = self._user_index(torch.arange(self.train_.n_users) if users is None else users)
        return self.net_.users(u)

    @torch.no_grad()
    def predict(self, users, items) -> torch.Tensor:
        """Dot-product scores of (user, item) pairs computed through both towers."""
        u, i = self._user_index(users), self._item_index(items)
        if u.shape != i.shape:
            raise ValueError(f"users and items must have one length, got {u.numel()} and {i.numel()}")
        return (self.net_.users(u) * self.net_.items(i)).sum(-1)

    @torch.no_grad()
    def score_users(self, users) -> torch.Tensor:
        """Scores of every item for each user: user tower output times the cached item vectors, ``(n, n_items)``."""
        return self.user_vectors(users) @ self.item_vectors().T

    def _item_vectors(self) -> torch.Tensor:
        return self.item_vectors()

    def _get_state(self) -> dict:
        return {"net." + k: v for k, v in self.net_.state_dict().items()}

    def _set_state(self, state: dict) -> None:
        self._seed_generators()
        self.net_ = _TwoTowerNet(self.train_.n_users, self.train_.n_items, self.n_factors, self.tower_layers,
                                 self.normalize).to(self.device_)
        self.net_.load_state_dict({k[4:]: v for k, v in state.items()})
        self.net_.eval()
        self._item_cache = None


# ---------------------------------------------------------------------------------------------------------------------
# How well does an MLP learn a dot product? (Rendle, Krichene, Zhang & Anderson 2020, Section 5)
# ---------------------------------------------------------------------------------------------------------------------
def mlp_learns_dot_product(n_factors: int = 8, hidden: int = 64, n_layers: int = 1, n_train: int = 10_000,
                           n_test: int = 10_000, n_steps: int = 1000, batch_size: int = 512, lr: float = 0.003,
                           device=None, random_state: int = 0) -> dict:
    """Fit an MLP on ``[p; q] -> p . q`` for random vectors and report its test RMSE.

    The vectors are drawn with ``p, q ~ N(0, I / sqrt(n_factors))`` so that ``p . q`` has unit variance: an RMSE of 1
    is what predicting 0 gives, and the dot product itself has RMSE 0 with no parameters at all. Rendle et al.
    (2020) run this experiment (with learned embeddings) to show that the MLP of NCF needs many hidden units and much
    data to approximate the dot product it replaces. Used by: Chapter 7.

    Parameters
    ----------
    n_factors : int
        Dimension of ``p`` and ``q``.
    hidden, n_layers : int
        Width and number of the ReLU hidden layers.
    n_train, n_test : int
        Training pairs (the data the MLP sees) and fresh pairs to measure on.
    n_steps, batch_size, lr : int, int, float
        Adam steps on minibatches of the training pairs.

    Returns
    -------
    dict
        ``train_rmse``, ``test_rmse``, ``target_std`` (the RMSE of predicting 0) and ``n_parameters``.
    """
    if min(n_factors, hidden, n_layers, n_train, n_test, n_steps, batch_size) < 1:
        raise ValueError("n_factors, hidden, n_layers, n_train, n_test, n_steps and batch_size must be >= 1")
    device = get_device(device)
    gen = torch.Generator().manual_seed(int(random_state))
    scale = n_factors ** -0.25  # each factor N(0, 1/sqrt(k)): p.q has variance 1
    p = (torch.randn(n_train + n_test, n_factors, generator=gen) * scale).to(device)
    q = (torch.randn(n_train + n_test, n_factors, generator=gen) * scale).to(device)
    x, y = torch.cat([p, q], dim=1), (p * q).sum(1)
    widths = [2 * n_factors] + [hidden] * n_layers
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
    _init_weights(net, gen)
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    with cpu_threads(1, device):
        step = 0
        while step < n_steps:
            for idx in minibatches(n_train, batch_size, device, gen):
                loss = F.mse_loss(net(x[idx]).squeeze(-1), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step == n_steps:
                    break
        with torch.no_grad():
            pred = net(x).squeeze(-1)
    err = (pred - y) ** 2
    return {"train_rmse": float(err[:n_train].mean().sqrt()), "test_rmse": float(err[n_train:].mean().sqrt()),
            "target_std": float(y[n_train:].std()), "n_parameters": sum(p.numel() for p in net.parameters())}
