"""The interface every mfkit model implements: :class:`Recommender`, and :class:`RatingMixin` for rating models.

A model is a class with a validated constructor (its parameters, stored under their own names) and a ``_fit``
method; the base class supplies everything else, the same for every model:

* :meth:`Recommender.fit` checks the data once, at the boundary (an :class:`~mfkit.data.Interactions`, not empty,
  finite ratings, indices in range, ``valid`` in ``train``'s index space), forgets any previous fit, resolves the
  device (``device=None``: CUDA when available, see :func:`mfkit.utils.get_device`) into ``device_``, remembers the
  training data as ``train_`` and calls ``_fit``. A model draws all its randomness from generators seeded with
  ``random_state`` inside ``_fit``, so a second ``fit`` gives the same model as the first.
* :meth:`~Recommender.score_users` (the one scoring method a model must write), :meth:`~Recommender.predict`,
  :meth:`~Recommender.recommend` (one DataFrame layout, :data:`RECOMMEND_COLUMNS`, for every model),
  :meth:`~Recommender.similar_items` (models with item vectors), :meth:`~Recommender.get_params`, ``repr``,
  :meth:`~Recommender.save` and :meth:`~Recommender.load`.
* One :class:`NotFittedError` before ``fit``.

Used by: every model of :mod:`mfkit.implicit` (Chapters 2–4), :mod:`mfkit.explicit` (Chapters 5–6) and
:mod:`mfkit.neural` (Chapter 7). ``CONTRIBUTING.md`` ("Adding a model") is the checklist for a new one.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import __version__
from .data.interactions import Interactions
from .metrics import mae, rmse
from .observed import seen_csr
from .topk import top_k
from .utils import check_choice, check_float, check_int, get_device  # noqa: F401 (re-exported)

__all__ = ["NotFittedError", "Recommender", "RatingMixin", "RECOMMEND_COLUMNS", "SIMILAR_COLUMNS",
           "check_interactions", "rating_errors", "check_int", "check_float", "check_choice"]

RECOMMEND_COLUMNS = ("user_id", "item_id", "title", "score", "rank")
"""Columns of :meth:`Recommender.recommend`, for every model: raw ids, title, score and rank (1 = best)."""

SIMILAR_COLUMNS = ("item_id", "title", "similarity", "rank")
"""Columns of :meth:`Recommender.similar_items`."""


class NotFittedError(RuntimeError, AttributeError):
    """A model was used (scored, saved, asked for recommendations) before :meth:`Recommender.fit`.

    A ``RuntimeError`` (what mfkit raised before there was one error class) and an ``AttributeError`` (what
    ``hasattr`` expects of a missing fitted attribute).
    """


# ---------------------------------------------------------------------------------------------------------------------
# Parameter and data checks
# ---------------------------------------------------------------------------------------------------------------------
def check_interactions(data, what: str = "train", ratings: bool = False, like: Interactions | None = None) -> None:
    """The checks every model's ``fit`` makes on its data (called by :meth:`Recommender.fit`).

    Raises
    ------
    TypeError
        ``data`` is not an :class:`~mfkit.data.Interactions`.
    ValueError
        No interactions; ratings needed but absent; a rating that is NaN or infinite; a negative or out-of-range
        user/item index; ``like`` given and ``data`` in another index space.
    """
    if not isinstance(data, Interactions):
        raise TypeError(f"{what} must be an mfkit.data.Interactions, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{what} is empty: it has no interactions")
    if ratings and data.rating is None:
        raise ValueError(f"{what} carries no ratings: this model needs Interactions with a rating column")
    if data.rating is not None:
        bad = ~np.isfinite(data.rating)
        if bad.any():
            raise ValueError(f"{what} has {int(bad.sum())} non-finite rating(s) (NaN or inf), the first at row "
                             f"{int(np.argmax(bad))}: drop or impute them before fitting")
    for side, idx, n in (("user", data.user, data.n_users), ("item", data.item, data.n_items)):
        low, high = int(idx.min()), int(idx.max())
        if low < 0 or high >= n:
            raise ValueError(f"{what} has {side} indices in [{low}, {high}], outside [0, {n}) (its {side}_ids "
                             f"hold {n} ids)")
    if like is not None and (data.n_users != like.n_users or data.n_items != like.n_items):
        raise ValueError(f"{what} ({data.n_users} users × {data.n_items} items) must share train's index space "
                         f"({like.n_users} × {like.n_items}): split one Interactions object")


def index_tensor(idx, n: int, device, what: str) -> torch.Tensor:
    """Dense indices as a 1-D int64 tensor on ``device``; ValueError for values outside ``[0, n)``."""
    if isinstance(idx, torch.Tensor):
        t = idx.to(device)
    else:
        t = torch.as_tensor(np.asarray(idx), device=device)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"{what} indices must be integers, got dtype {t.dtype}")
    t = t.long().reshape(-1)
    if t.numel():
        low, high = torch.aminmax(t)
        if int(low) < 0 or int(high) >= n:
            raise ValueError(f"{what} indices must lie in [0, {n}), got values from {int(low)} to {int(high)}; "
                             "raw ids go through recommend / predict_raw, or Interactions.user_index/item_index")
    return t


def _raw_to_index(raw, known: np.ndarray) -> np.ndarray:
    """Dense index of each raw id in the sorted array ``known``; -1 for ids never seen."""
    raw = np.asarray(raw).reshape(-1)
    pos = np.searchsorted(known, raw)
    pos_c = np.minimum(pos, len(known) - 1)
    ok = (pos < len(known)) & (known[pos_c] == raw)
    return np.where(ok, pos_c, -1).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------------------------------------------------
SAVE_FORMAT = 1
"""Version of the file layout written by :meth:`Recommender.save` (its docstring describes it)."""


def _compatible(version: str) -> bool:
    """Whether a file written by mfkit ``version`` can be read by this one: same major version (same minor in 0.x)."""
    try:
        mine, theirs = [tuple(int(x) for x in v.split(".")[:2]) for v in (__version__, version)]
    except (AttributeError, ValueError):
        return False
    return mine == theirs if mine[0] == 0 else mine[0] == theirs[0]


def _read_model_file(path: Path, zipfile) -> tuple[dict, dict]:
    """``(meta, arrays)`` of a file written by :meth:`Recommender.save`, or a ValueError that says what is wrong."""
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files") or "__meta__" not in npz.files:
                raise ValueError("no __meta__ entry")
            meta = json.loads(str(npz["__meta__"]))
            if not isinstance(meta, dict) or not {"class", "params", "kinds", "mfkit_version"} <= set(meta):
                raise ValueError("its __meta__ lacks the keys mfkit writes")
            if meta.get("format", SAVE_FORMAT) != SAVE_FORMAT or not _compatible(meta["mfkit_version"]):
                raise _Incompatible(meta)
            if not str(meta["class"]).startswith("mfkit."):
                raise ValueError(f"it names the class {meta['class']!r}, which is not an mfkit model")
            arrays = {name: npz[name] for name in npz.files if name != "__meta__"}
    except _Incompatible as err:
        m = err.args[0]
        raise ValueError(f"{path} was written by mfkit {m.get('mfkit_version')!r} (save format {m.get('format', 1)}); "
                         f"this is mfkit {__version__} (format {SAVE_FORMAT}), which cannot read it: load it with "
                         "the mfkit version that wrote it and refit or re-save") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable mfkit model file (not written by Recommender.save, or corrupt "
                         f"or truncated): {err}") from None
    missing = [f"state/{n}" for n in meta["kinds"] if f"state/{n}" not in arrays]
    missing += [n for n in ("train/user_ids", "train/item_ids", "train/titles") if n not in arrays]
    if missing:
        raise ValueError(f"{path} is an incomplete mfkit model file: {missing} missing")
    return meta, arrays


class _Incompatible(Exception):
    pass


class Recommender:
    """Base class of every mfkit model.

    A subclass writes:

    * ``__init__(self, ..., device=None, random_state=0)``: validate each argument (:func:`check_int`,
      :func:`check_float`, :func:`check_choice`) and store it under its own name (``get_params`` reads them back).
    * ``_fit(self, train, valid, **kwargs)``: train. ``self.train_`` and ``self.device_`` are set; seed every
      generator from ``self.random_state`` here (not in ``__init__``); put epochs through
      :func:`mfkit.training.epoch_loop` (or :func:`~mfkit.training.train_loop`) so history, validation, early
      stopping and divergence checks come for free; store fitted tensors in attributes ending in ``_``.
    * ``score_users(self, users)``: ``(len(users), n_items)`` scores of dense user indices (validate them with
      ``self._user_index(users)``), on ``self.device_``.
    * ``fitted_attributes``: names of the fitted tensors/arrays/numbers (what :meth:`save` stores); models whose
      state is not a set of attributes (a torch network) override ``_get_state``/``_set_state`` instead.
    * optionally ``predict`` (the default gathers from ``score_users``) and ``_item_vectors`` (enables
      :meth:`similar_items`).

    Class attributes: ``requires_ratings`` (explicit models), ``default_metric`` (what the tuner and the
    validation during ``fit`` watch: ``"ndcg"`` or ``"rmse"``).
    """

    requires_ratings: bool = False
    default_metric: str = "ndcg"
    fitted_attributes: tuple[str, ...] = ()

    # -- parameters --------------------------------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict:
        """The constructor arguments, by name (``type(model)(**model.get_params())`` is an unfitted copy)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def clone(self, **overrides) -> "Recommender":
        """An unfitted copy, with ``overrides`` replacing some constructor arguments (validated again)."""
        return type(self)(**{**self.get_params(), **overrides})

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = default is not inspect.Parameter.empty and bool(value == default)
            except Exception:  # noqa: BLE001 - arrays and the like: show them
                same = False
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- fitting -----------------------------------------------------------------------------------------------------
    def fit(self, train: Interactions, valid: Interactions | None = None, *, patience: int | None = None,
            **kwargs) -> "Recommender":
        """Fit on ``train``, from scratch: a second call gives the same model as the first (the one ``fit`` of every
        model: subclasses implement ``_fit``).

        Parameters
        ----------
        train : Interactions
            Training interactions (ratings for the explicit models).
        valid : Interactions, optional
            Held-out interactions in ``train``'s index space; models trained by epochs record a validation metric
            per epoch (``history_``) and keep the best epoch. The metric is the model's ``default_metric``:
            validation RMSE for rating models, nDCG@10 (train items excluded) otherwise.
        patience : int, optional
            Models trained by epochs: stop after this many epochs without a better validation metric (needs
            ``valid``); the best epoch is restored.
        **kwargs
            Model-specific (``k``: the cut-off of the validation nDCG of the implicit ALS models).

        Returns
        -------
        self

        Raises
        ------
        TypeError, ValueError
            Bad data (see :func:`check_interactions`).
        mfkit.training.DivergenceError
            The training loss became NaN/inf or exploded.
        """
        if patience is not None:
            if valid is None:
                raise ValueError("patience needs valid (early stopping watches the validation metric)")
            kwargs["patience"] = check_int("patience", patience, 1)
        check_interactions(train, "train", self.requires_ratings)
        if valid is not None:
            check_interactions(valid, "valid", self.requires_ratings, like=train)
        self._reset()
        self.device_ = get_device(getattr(self, "device", None))
        self.train_ = train
        try:
            self._fit(train, valid, **kwargs)
        except BaseException:
            self._reset()  # a failed fit leaves an unfitted model, never a half-trained one
            raise
        return self

    def _fit(self, train: Interactions, valid: Interactions | None, **kwargs) -> None:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement _fit(train, valid, **kwargs)")

    def _reset(self) -> None:
        """Forget what a fit set: every attribute whose name ends in ``_`` (``train_``, ``device_``, ``history_``,
        the fitted tensors). Private helpers (``_cache``...) are the model's to overwrite in ``_fit``."""
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
            delattr(self, name)

    @property
    def is_fitted(self) -> bool:
        return "train_" in vars(self)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit(train) first")

    @property
    def n_users_(self) -> int:
        self._check_fitted()
        return self.train_.n_users

    @property
    def n_items_(self) -> int:
        self._check_fitted()
        return self.train_.n_items

    def _user_index(self, users) -> torch.Tensor:
        """Validated dense user indices on the model's device (checks that the model is fitted)."""
        self._check_fitted()
        return index_tensor(users, self.train_.n_users, self.device_, "user")

    def _item_index(self, items) -> torch.Tensor:
        self._check_fitted()
        return index_tensor(items, self.train_.n_items, self.device_, "item")

    # -- scoring -----------------------------------------------------------------------------------------------------
    def score_users(self, users) -> torch.Tensor:  # pragma: no cover - every model overrides it
        """Scores of every item for dense user indices ``users``: a ``(len(users), n_items)`` tensor."""
        raise NotImplementedError(f"{type(self).__name__} must implement score_users(users)")

    def predict(self, users, items) -> torch.Tensor:
        """Scores of (dense user index, dense item index) pairs, one per pair, on the model's device.

        Agrees with ``score_users(users)[j, items[j]]``; this default computes it that way (one row per distinct
        user), models with a cheaper pairwise rule override it.
        """
        u, i = self._user_index(users), self._item_index(items)
        if u.shape != i.shape:
            raise ValueError(f"users and items must have one length, got {u.numel()} and {i.numel()}")
        if u.numel() == 0:
            return torch.zeros(0, device=self.device_)
        distinct, inverse = torch.unique(u, return_inverse=True)
        with torch.no_grad():
            return self.score_users(distinct)[inverse, i]

    def recommend(self, user_ids, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items for one raw user id or a list of them.

        Parameters
        ----------
        user_ids : raw id or sequence of raw ids
            Users of the training data's id map (``KeyError`` for an unknown id).
        k : int
            Items per user.
        exclude_seen : bool
            Leave out the items each user has in the training data.

        Returns
        -------
        pandas.DataFrame
            ``k`` rows per user, columns :data:`RECOMMEND_COLUMNS`: ``user_id``, ``item_id`` (raw), ``title``
            (the raw id where no title is known), ``score``, ``rank`` (1 = best).

        Raises
        ------
        KeyError
            An unknown raw user id.
        ValueError
            ``k < 1``, or more than the items a user has not seen (or than the catalogue).
        """
        self._check_fitted()
        k = check_int("k", k, 1)
        single = np.ndim(user_ids) == 0
        raw = np.asarray([user_ids] if single else list(user_ids))
        users = torch.from_numpy(self.train_.user_index(raw)).to(self.device_)
        n_items = self.train_.n_items
        with torch.no_grad():
            scores = self.score_users(users).to(self.device_, torch.float32).clone()
        seen = seen_csr(self.train_) if exclude_seen else None
        rows = users.cpu().numpy()
        available = n_items - (np.diff(seen.indptr)[rows] if exclude_seen else 0)
        if len(users) and int(np.min(available)) < k:
            if not exclude_seen:
                raise ValueError(f"k={k} is more than the {n_items} items of the catalogue")
            j = int(np.argmin(available))
            raise ValueError(f"k={k} is more than the {int(available[j])} items user {raw[j].item()!r} has not seen")
        values, indices = top_k(scores, k, seen, rows)
        items = indices.cpu().numpy().reshape(-1)
        return pd.DataFrame({"user_id": np.repeat(raw, k), "item_id": self.train_.item_ids[items],
                             "title": self.train_.item_titles(items),
                             "score": values.cpu().numpy().reshape(-1),
                             "rank": np.tile(np.arange(1, k + 1), len(raw))}, columns=list(RECOMMEND_COLUMNS))

    # -- hooks for serving: fold-in and vectors (a model gets fold-in and ANN serving by implementing them) -----
    def fold_in(self, item: np.ndarray, owner: np.ndarray, n_users: int, rating: np.ndarray | None = None, *,
                reg: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Vectors (and biases, or None) of ``n_users`` users who were not in the training data, the items fixed:
        the closed-form user step of the model's own ALS (:func:`mfkit.als.solve_rows`).

        ``item[j]`` (dense item index) belongs to user ``owner[j]``; ``rating[j]`` its rating (rating models);
        ``reg`` replaces the model's factor penalty. A user without items gets zeros. The default raises
        ``NotImplementedError``: :func:`mfkit.serving.fold_in_users` then takes gradient steps on
        :meth:`fold_in_loss`.
        """
        raise NotImplementedError(f"{type(self).__name__} has no closed-form fold-in")

    def fold_in_loss(self, x: torch.Tensor, bias: torch.Tensor | None, rows: torch.Tensor, cols: torch.Tensor,
                     counts: torch.Tensor, rating: torch.Tensor | None, reg: float | None) -> torch.Tensor:
        """The model's training loss (summed) of new users' vectors ``x`` (and ``bias``) with the items fixed, for
        gradient fold-in; ``rows``/``cols`` the users' interactions. Default: ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} cannot fold in new users")

    def score_folded(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of every item for users given by their vectors (and biases), on the model's scale."""
        raise NotImplementedError(f"{type(self).__name__} cannot score folded-in users")

    def user_vectors(self, users=None) -> torch.Tensor:
        """``(n_users, d)`` vectors (the rows of dense indices ``users``, default all) whose inner product with
        :meth:`item_vectors` ranks each user's items as :meth:`score_users` does (exact top-k in batches, ANN
        indexes). Default: ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} has no user vectors")

    def item_vectors(self) -> torch.Tensor:
        """``(n_items, d)`` vectors, the partners of :meth:`user_vectors`."""
        raise NotImplementedError(f"{type(self).__name__} has no item vectors")

    def _item_vectors(self) -> torch.Tensor:
        """``(n_items, d)`` item vectors for :meth:`similar_items`; models without them do not override this."""
        raise TypeError(f"{type(self).__name__} has no item vectors: similar_items needs a factor model")

    def similar_items(self, item_id, k: int = 10) -> pd.DataFrame:
        """The ``k`` items whose vectors have the highest cosine similarity with raw item ``item_id`` (itself left out).

        Returns a DataFrame with columns :data:`SIMILAR_COLUMNS` (``item_id``, ``title``, ``similarity``, ``rank``).
        ``KeyError`` for an unknown id, ``ValueError`` for ``k`` outside ``[1, n_items - 1]``, ``TypeError`` for a
        model without item vectors.
        """
        self._check_fitted()
        k = check_int("k", k, 1)
        i = int(self.train_.item_index([item_id])[0])
        V = self._item_vectors().detach().float()
        if k > V.shape[0] - 1:
            raise ValueError(f"k={k} is more than the {V.shape[0] - 1} other items")
        normed = V / V.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sims = normed @ normed[i]
        sims[i] = -torch.inf
        top = torch.topk(sims, k)
        items = top.indices.cpu().numpy()
        return pd.DataFrame({"item_id": self.train_.item_ids[items], "title": self.train_.item_titles(items),
                             "similarity": top.values.cpu().numpy(), "rank": np.arange(1, k + 1)})

    # -- state, save and load ----------------------------------------------------------------------------------------
    def _get_state(self) -> dict:
        """The fitted state: ``{name: tensor, array or number}`` (default: the ``fitted_attributes``)."""
        return {name: getattr(self, name) for name in self.fitted_attributes}

    def _set_state(self, state: dict) -> None:
        """Put back what :meth:`_get_state` returned (tensors already on ``device_``)."""
        for name, value in state.items():
            setattr(self, name, value)

    def fitted_state(self) -> dict:
        """The fitted tensors, arrays and numbers by name (what :meth:`save` stores besides the parameters)."""
        self._check_fitted()
        return self._get_state()

    def save(self, path, include_train: bool = True) -> Path:
        """Write the fitted model to one ``.npz`` file: its state, parameters, id maps, training data and mfkit version.

        The format (``SAVE_FORMAT`` 1): an uncompressed numpy ``.npz`` (a zip archive, each member CRC-checked on
        reading) holding ``__meta__``, a JSON string ``{"format", "class", "params", "kinds", "mfkit_version",
        "include_train"}``; the fitted tensors/arrays/numbers as ``state/<name>`` (tensors on the CPU, their dtype in
        ``kinds``); the id maps and titles as ``train/user_ids``, ``train/item_ids``, ``train/titles``; and, with
        ``include_train``, the training interactions ``train/user``, ``train/item`` (and ``train/rating``).

        The parameters go in as JSON; a parameter that JSON cannot hold (a fitted model passed as ``pretrained``)
        is stored as ``None`` — the fitted state already carries its effect. ``include_train=False`` writes what
        scoring needs without the interactions (a serving copy that loads fast; the loaded model then knows no
        user's seen items, so ``recommend`` excludes nothing).
        """
        self._check_fitted()
        arrays, kinds = {}, {}
        for name, value in self._get_state().items():
            if isinstance(value, torch.Tensor):
                kinds[name] = str(value.dtype).replace("torch.", "")
                value = value.detach().cpu()
                arrays["state/" + name] = (value.double() if value.dtype == torch.bfloat16 else value).numpy()
            elif isinstance(value, np.ndarray):
                kinds[name], arrays["state/" + name] = "numpy", value
            else:
                kinds[name], arrays["state/" + name] = "scalar", np.asarray(value)
        train = self.train_
        arrays.update({"train/user_ids": train.user_ids, "train/item_ids": train.item_ids,
                       "train/titles": train.item_titles().astype(str)})
        if include_train:
            arrays.update({"train/user": train.user, "train/item": train.item})
            if train.rating is not None:
                arrays["train/rating"] = train.rating
        params = {}
        for name, value in self.get_params().items():
            if isinstance(value, torch.dtype):
                value = {"torch_dtype": str(value).replace("torch.", "")}
            elif isinstance(value, torch.device):
                value = str(value)
            elif isinstance(value, tuple):
                value = {"tuple": list(value)}
            try:
                json.dumps(value)
            except TypeError:
                value = None
            params[name] = value
        meta = {"format": SAVE_FORMAT, "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "params": params, "kinds": kinds, "mfkit_version": __version__, "include_train": bool(include_train)}
        path = Path(path)
        with open(path, "wb") as fh:
            np.savez(fh, __meta__=np.asarray(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path, device=None) -> "Recommender":
        """Read a model written by :meth:`save` (``device`` overrides the saved ``device`` parameter).

        Raises
        ------
        ValueError
            The file is not an mfkit model (not an ``.npz``, or no mfkit metadata), is corrupt or truncated (a zip
            or CRC error), or was written by an incompatible mfkit version (another save format, or another
            major version; for 0.x, another minor version).
        TypeError
            The file holds another model class than ``cls``.
        """
        import importlib
        import zipfile

        path = Path(path)
        meta, arrays = _read_model_file(path, zipfile)
        module, _, qualname = meta["class"].rpartition(".")
        model_cls = getattr(importlib.import_module(module), qualname)
        if not issubclass(model_cls, cls):
            raise TypeError(f"{path} holds a {qualname}, not a {cls.__name__}")
        params = {}
        for name, value in meta["params"].items():
            if isinstance(value, dict) and "torch_dtype" in value:
                value = getattr(torch, value["torch_dtype"])
            elif isinstance(value, dict) and "tuple" in value:
                value = tuple(value["tuple"])
            params[name] = value
        if device is not None and "device" in params:
            params["device"] = device
        model = model_cls(**params)
        titles = arrays["train/titles"]
        items = pd.DataFrame({"title": titles}, index=arrays["train/item_ids"])
        empty = np.zeros(0, dtype=np.int32)
        model.train_ = Interactions(arrays.get("train/user", empty), arrays.get("train/item", empty),
                                    arrays.get("train/rating"), arrays["train/user_ids"], arrays["train/item_ids"],
                                    items=items)
        model.device_ = get_device(params.get("device"))
        state = {}
        for name, kind in meta["kinds"].items():
            value = arrays["state/" + name]
            if kind == "numpy":
                state[name] = value
            elif kind == "scalar":
                state[name] = value.item()
            else:
                state[name] = torch.from_numpy(value).to(model.device_, getattr(torch, kind))
        model._set_state(state)
        return model


# ---------------------------------------------------------------------------------------------------------------------
# Rating models
# ---------------------------------------------------------------------------------------------------------------------
def rating_errors(model, test: Interactions, clip: tuple[float, float] | None = (1, 5)) -> dict:
    """RMSE and MAE of a fitted model's predictions on ``test`` (protocol E1: predictions clipped to [1, 5]).

    Used by: Chapters 5–6 and ``benchmarks/explicit_ml100k.py`` (as :func:`mfkit.explicit.evaluate`),
    :meth:`RatingMixin.score` and :func:`mfkit.training.tune`.

    Parameters
    ----------
    model : object with ``predict(users, items)``
        A fitted model; ``test`` must share the index maps of its training data (as every mfkit split does).
    test : Interactions
        The held-out ratings.
    clip : (low, high) or None
        Rating scale to clip predictions to before scoring.

    Returns
    -------
    dict
        ``{"rmse": float, "mae": float}``.
    """
    check_interactions(test, "test", ratings=True)
    with torch.no_grad():
        pred = model.predict(test.user, test.item)
    target = torch.as_tensor(test.rating, dtype=torch.float64)
    pred = pred.detach().cpu().double()
    return {"rmse": rmse(pred, target, clip=clip), "mae": mae(pred, target, clip=clip)}


class FactorMixin:
    """Models that score ``u · v`` (``+ b_i`` when they have ``item_bias_``) from ``user_factors_``/
    ``item_factors_``: the vector hooks (top-k of every user, ANN serving) and ``similar_items`` come from the
    factors. ``class M(FactorMixin, Recommender)``."""

    def user_vectors(self, users=None) -> torch.Tensor:
        """``p_u``, or ``[p_u, 1]`` with item biases: with :meth:`item_vectors` ``[q_i, b_i]`` the inner product
        ranks items as the model does (a user's own bias and a global mean do not change a user's ranking)."""
        P = self.user_factors_.detach()
        if users is not None:
            P = P[self._user_index(users)]
        if getattr(self, "item_bias_", None) is None:
            return P
        return torch.cat([P, torch.ones(len(P), 1, dtype=P.dtype, device=P.device)], 1)

    def item_vectors(self) -> torch.Tensor:
        Q = self.item_factors_.detach()
        if getattr(self, "item_bias_", None) is None:
            return Q
        return torch.cat([Q, self.item_bias_.detach().to(Q.dtype)[:, None]], 1)

    def _item_vectors(self) -> torch.Tensor:
        return self.item_factors_


class RatingMixin(FactorMixin):
    """What every explicit-rating model shares: predictions ``mu + b_u + b_i + p_u . q_i`` and their uses.

    Combine it with :class:`Recommender` (``class MyModel(RatingMixin, Recommender)``) and set, in ``_fit``,
    ``global_mean_`` (float), ``user_bias_``/``item_bias_`` (``(n_users,)``/``(n_items,)`` tensors) and
    ``user_factors_``/``item_factors_`` (``(n, k)`` tensors, ``k`` may be 0). It gives :meth:`predict`,
    :meth:`predict_raw`, :meth:`score_users` (predicted ratings of every item, so ``ranking_metrics`` and
    ``recommend`` rank rating models too), :meth:`score` and ``similar_items`` (on the item factors).
    """

    requires_ratings = True
    default_metric = "rmse"
    fitted_attributes = ("global_mean_", "user_bias_", "item_bias_", "user_factors_", "item_factors_")

    global_mean_: float
    user_bias_: torch.Tensor
    item_bias_: torch.Tensor
    user_factors_: torch.Tensor
    item_factors_: torch.Tensor

    def predict(self, users, items) -> torch.Tensor:
        """Predicted ratings (unclipped) of dense (user, item) index pairs of the training data's index maps."""
        u, i = self._user_index(users), self._item_index(items)
        if u.shape != i.shape:
            raise ValueError(f"users and items must have one length, got {u.numel()} and {i.numel()}")
        with torch.no_grad():
            pred = self.global_mean_ + self.user_bias_[u] + self.item_bias_[i]
            if self.user_factors_.shape[1]:
                pred = pred + (self.user_factors_[u] * self.item_factors_[i]).sum(1)
        return pred

    def score_users(self, users) -> torch.Tensor:
        """Predicted ratings of every item for dense user indices: ``(len(users), n_items)``."""
        u = self._user_index(users)
        with torch.no_grad():
            out = self.global_mean_ + self.user_bias_[u, None] + self.item_bias_[None, :]
            if self.user_factors_.shape[1]:
                out = out + self.user_factors_[u] @ self.item_factors_.T
        return out

    def predict_raw(self, user_ids, item_ids) -> torch.Tensor:
        """Predicted ratings (unclipped) of raw (user, item) id pairs.

        Ids the training data's index maps do not know get zero bias and zero factors: the prediction falls back
        to the global mean plus whatever bias is known.
        """
        self._check_fitted()
        dev = self.user_bias_.device
        u = torch.as_tensor(_raw_to_index(user_ids, self.train_.user_ids), device=dev)
        i = torch.as_tensor(_raw_to_index(item_ids, self.train_.item_ids), device=dev)
        if u.shape != i.shape:
            raise ValueError(f"user_ids and item_ids must have one length, got {u.numel()} and {i.numel()}")
        ku, ki = u >= 0, i >= 0
        uc, ic = u.clamp(min=0), i.clamp(min=0)
        with torch.no_grad():
            pred = (self.global_mean_ + torch.where(ku, self.user_bias_[uc], 0.0)
                    + torch.where(ki, self.item_bias_[ic], 0.0))
            if self.user_factors_.shape[1]:
                dot = (self.user_factors_[uc] * self.item_factors_[ic]).sum(1)
                pred = pred + torch.where(ku & ki, dot, 0.0)
        return pred

    def score(self, test: Interactions, clip=(1, 5)) -> dict:
        """RMSE and MAE on ``test`` (:func:`rating_errors`)."""
        return rating_errors(self, test, clip)

    def fold_in_loss(self, x, bias, rows, cols, counts, rating, reg):
        """Squared error of the new users' ratings plus the per-rating penalty on their factors and biases."""
        V, bi = self.item_factors_.detach().to(x.dtype), self.item_bias_.detach().to(x.dtype)
        lam = float(getattr(self, "reg", 0.05)) if reg is None else reg
        err = rating - (self.global_mean_ + bias[rows] + bi[cols] + (x[rows] * V[cols]).sum(1))
        return (err ** 2).sum() + lam * (counts * ((x * x).sum(1) + bias * bias)).sum()

    def score_folded(self, x, bias=None):
        """Predicted ratings of every item: ``μ + b_u + b_i + x · q_i``."""
        with torch.no_grad():
            out = self.global_mean_ + self.item_bias_[None, :] + bias[:, None]
            if x.shape[1]:
                out = out + x @ self.item_factors_.T
            return out

    def _item_vectors(self) -> torch.Tensor:
        if not self.item_factors_.shape[1]:
            raise TypeError(f"{type(self).__name__} has no item factors: similar_items needs n_factors >= 1")
        return self.item_factors_
