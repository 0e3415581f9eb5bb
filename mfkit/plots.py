"""The book's summary figures: models with their intervals over split seeds, speed ratios, and what a split holds.

Used by: the results page (``book/results.ipynb``: :func:`seed_intervals`, :func:`interval_plot`,
:func:`speed_ratios`, :func:`speed_plot`) and "How we measure" (``book/how_we_measure.ipynb``: :func:`split_codes`,
:func:`split_plot`). Every figure follows the book's one style (:func:`mfkit.utils.plot_style`, set by
:func:`mfkit.setup`); the numbers come from the benchmark records (``benchmarks/results/*.json``, see
:mod:`mfkit.book`) or from mfkit's own split functions, never typed in.

An interval over split seeds is ``mean ± t · sd / √n`` of the per-seed values (Student's t, ``n − 1`` degrees of
freedom). A model *ties* with the best one when :func:`mfkit.metrics.paired_comparison` over the split seeds the two
share (the same splits, paired seed by seed) gives an interval of the difference that contains zero.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["seed_values", "seed_intervals", "interval_rows", "interval_plot", "speed_ratios", "speed_plot", "split_codes",
           "split_plot", "SPLIT_PARTS"]

#: The parts a split figure colours, in order (code 0 is "not rated").
SPLIT_PARTS = ("not rated", "train", "validation", "test")


def seed_values(record: dict, metric: str) -> dict[int, float]:
    """``{split seed: value}`` of ``metric`` from a benchmark record's per-seed ``runs`` (empty when it has none)."""
    runs = record.get("runs")
    if not isinstance(runs, list):
        return {}
    return {int(r["seed"]): float(r[metric]) for r in runs
            if isinstance(r, dict) and "seed" in r and isinstance(r.get(metric), (int, float))}


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    from scipy import stats

    if len(values) < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return float(values.mean()) - half, float(values.mean()) + half


def seed_intervals(payloads: dict[str, dict], protocol: str, metric: str, *, scripts=None,
                   higher_is_better: bool = True, min_seeds: int = 2, level: float = 0.95) -> pd.DataFrame:
    """One row per model measured on at least ``min_seeds`` split seeds: its mean, ``level`` interval over the
    seeds, and how it compares with the best model (paired over the seeds both have).

    Parameters
    ----------
    payloads : dict
        ``{script: payload}`` from :func:`mfkit.book.load_results`.
    protocol, metric : str
        Which records (``"E1"``, ``"I1"``) and which per-seed value (``"rmse"``, ``"ndcg"``).
    scripts : iterable of str, optional
        Only these scripts' records (default: all). A model measured by two scripts keeps both, labelled
        ``"model (script)"``.
    higher_is_better : bool
        False for errors (RMSE): the best model has the lowest mean.

    Returns
    -------
    DataFrame
        Columns ``model, script, peer`` (True for another library's model, i.e. a record with no chapter),
        ``n_seeds, mean, low, high, verdict`` (``"best"``, ``"tie"`` or ``"behind"``), ``difference, diff_low,
        diff_high`` (model − best, paired over seeds) and ``comparison`` (the sentence of
        :class:`mfkit.metrics.PairedComparison`), best model first.
    """
    from mfkit.metrics import paired_comparison

    rows = []
    for script, payload in payloads.items():
        if scripts is not None and script not in scripts:
            continue
        for record in payload.get("records", []):
            values = seed_values(record, metric) if record.get("protocol") == protocol else {}
            if len(values) < min_seeds:
                continue
            arr = np.array(list(values.values()))
            low, high = _interval(arr, level)
            rows.append({"model": record["model"], "script": script, "peer": record.get("chapter") is None,
                         "values": values, "n_seeds": len(values), "mean": float(arr.mean()), "low": low,
                         "high": high})
    columns = ["model", "script", "peer", "n_seeds", "mean", "low", "high", "verdict", "difference", "diff_low",
               "diff_high", "comparison"]
    if not rows:
        return pd.DataFrame(columns=columns)
    names = pd.Series([r["model"] for r in rows])
    for r, dup in zip(rows, names.duplicated(keep=False)):
        if dup:
            r["model"] = f"{r['model']} ({r['script']})"
    rows.sort(key=lambda r: -r["mean"] if higher_is_better else r["mean"])
    best = rows[0]
    for r in rows:
        if r is best:
            r.update(verdict="best", difference=0.0, diff_low=0.0, diff_high=0.0, comparison="")
            continue
        seeds = sorted(set(r["values"]) & set(best["values"]))
        if len(seeds) < 2:
            r.update(verdict="not paired", difference=math.nan, diff_low=math.nan, diff_high=math.nan,
                     comparison=f"{r['model']} shares fewer than two split seeds with {best['model']}")
            continue
        c = paired_comparison([r["values"][s] for s in seeds], [best["values"][s] for s in seeds],
                              names=(r["model"], best["model"]), metric=metric, over="seeds",
                              higher_is_better=higher_is_better, level=level)
        r.update(verdict="tie" if c.verdict == "tie" else ("ahead" if c.winner == r["model"] else "behind"),
                 difference=c.difference, diff_low=c.low, diff_high=c.high, comparison=str(c))
    return pd.DataFrame(rows)[columns].reset_index(drop=True)


def interval_rows(table: pd.DataFrame, *, digits: int = 4) -> pd.DataFrame:
    """:func:`seed_intervals` as display strings for a results table: model, who built it, the mean, its interval
    over split seeds, and the paired difference from the best model with its interval and verdict."""
    f = f"{{:.{digits}f}}"
    rows = []
    for _, r in table.iterrows():
        versus = "best" if r["verdict"] == "best" else (
            f"{r['verdict']}: {r['difference']:+.{digits}f} [{r['diff_low']:+.{digits}f}, {r['diff_high']:+.{digits}f}]"
            if r["verdict"] != "not paired" else "not paired")
        rows.append({"model": r["model"], "from": "other library" if r["peer"] else "mfkit",
                     "mean": f.format(r["mean"]), "95% interval": f"[{f.format(r['low'])}, {f.format(r['high'])}]",
                     "split seeds": str(r["n_seeds"]), "− best, paired (95%)": versus})
    return pd.DataFrame(rows, columns=["model", "from", "mean", "95% interval", "split seeds",
                                       "− best, paired (95%)"])


def interval_plot(table: pd.DataFrame, *, metric_label: str, title: str, ax=None):
    """Each model's mean and interval as a horizontal bar, best first; filled markers are the best model and those
    that tie with it, hollow ones are behind; another library's models are drawn in a second colour and marked
    "(peer)". A dotted line marks the best model's mean.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    mfkit_colour, peer_colour = colours[0], colours[1 % len(colours)]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.9 + 0.32 * max(len(table), 1)))
    y = np.arange(len(table))[::-1]
    for yi, (_, r) in zip(y, table.iterrows()):
        colour = peer_colour if r["peer"] else mfkit_colour
        filled = r["verdict"] in ("best", "tie", "ahead")
        ax.errorbar(r["mean"], yi, xerr=[[r["mean"] - r["low"]], [r["high"] - r["mean"]]], fmt="o", color=colour,
                    markerfacecolor=colour if filled else "white", markersize=6, capsize=3, linestyle="none")
    labels = [f"{m} (peer)" if p else m for m, p in zip(table["model"], table["peer"])]
    ax.set_yticks(y, labels)
    if len(table):
        ax.axvline(table["mean"].iloc[0], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(metric_label)
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    handles = [Line2D([], [], marker="o", linestyle="none", color="grey", markerfacecolor="grey",
                      label="best, or tied with it"),
               Line2D([], [], marker="o", linestyle="none", color="grey", markerfacecolor="white",
                      label="behind the best")]
    if table["peer"].any():
        handles += [Line2D([], [], marker="s", linestyle="none", color=mfkit_colour, label="mfkit"),
                    Line2D([], [], marker="s", linestyle="none", color=peer_colour, label="other library")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.5 / max(len(table), 2) - 0.12),
              ncol=len(handles))
    return ax.figure


def speed_ratios(payloads: dict[str, dict], *, time_only: bool = True) -> pd.DataFrame:
    """The P1 records as ``model, measure, peer, value, baseline, ratio, script`` (ratio = mfkit / the other
    library), one row per measure; with ``time_only`` only timed measures (a measure in seconds), not objectives."""
    rows = [{"model": r["model"], "measure": r["measure"], "peer": r["peer"], "value": r["value"],
             "baseline": r["baseline"], "ratio": r["ratio"], "script": script}
            for script, payload in payloads.items() for r in payload.get("records", [])
            if r.get("protocol") == "P1" and isinstance(r.get("ratio"), (int, float))
            and not str(r.get("peer", "")).startswith("(")]
    table = pd.DataFrame(rows, columns=["model", "measure", "peer", "value", "baseline", "ratio", "script"])
    if time_only:
        table = table[table["measure"].str.contains(r"\(s\)")]
    return table.reset_index(drop=True)


def _wrap(text: str, width: int = 48) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def speed_plot(table: pd.DataFrame, *, title: str = "mfkit's time / the other library's", ax=None):
    """One horizontal bar per measure of :func:`speed_ratios`, from 1 to its ratio on a log scale (a bar to the left
    of the line: mfkit takes less time), coloured by the other library, each labelled with its ratio. Returns the Figure."""
    import matplotlib.pyplot as plt

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 1.0 + 0.42 * max(len(table), 1)))
    peers = list(dict.fromkeys(table["peer"]))
    y = np.arange(len(table))[::-1]
    for yi, (_, r) in zip(y, table.iterrows()):
        ax.barh(yi, r["ratio"] - 1.0, left=1.0, color=colours[peers.index(r["peer"]) % len(colours)], height=0.6,
                label=r["peer"])
        faster = r["ratio"] < 1
        ax.annotate(f"{r['ratio']:.2g}×", (r["ratio"], yi), xytext=(-3 if faster else 3, 0),
                    textcoords="offset points", va="center", ha="right" if faster else "left", fontsize="small")
    ax.set_xscale("log")
    low, high = float(table["ratio"].min()) if len(table) else 0.5, float(table["ratio"].max()) if len(table) else 2
    ax.set_xlim(min(low, 1.0) / 2.5, max(high, 1.0) * 2.5)
    ax.axvline(1.0, color="grey", linewidth=1)
    ax.set_yticks(y, [_wrap(f"{m}: {s}") for m, s in zip(table["model"], table["measure"])], fontsize="x-small")
    ax.set_xlabel("time ratio, mfkit / other library (log scale; < 1: mfkit faster)")
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(0.0, -0.25 if len(table) < 4
                                                                                    else -0.12), ncol=2)
    return ax.figure


def split_codes(users: np.ndarray, items: np.ndarray, parts: dict[str, object]) -> np.ndarray:
    """A ``(len(users), len(items))`` matrix of codes for the cells of a small window of the rating matrix: 0 not
    rated, then 1, 2, 3 for the parts named ``train``, ``validation``, ``test`` in ``parts`` (each an
    :class:`mfkit.data.Interactions` over the same user and item indices). A pair found in two parts raises
    ValueError (the parts of a split are disjoint)."""
    users, items = np.asarray(users), np.asarray(items)
    codes = np.zeros((len(users), len(items)), dtype=np.int64)
    row = {u: i for i, u in enumerate(users.tolist())}
    col = {v: j for j, v in enumerate(items.tolist())}
    for name, part in parts.items():
        code = SPLIT_PARTS.index(name)
        for u, v in zip(np.asarray(part.user).tolist(), np.asarray(part.item).tolist()):
            if u in row and v in col:
                if codes[row[u], col[v]]:
                    raise ValueError(f"user {u}, item {v} is in two parts of the split")
                codes[row[u], col[v]] = code
    return codes


def split_plot(panels: dict[str, np.ndarray], *, xlabel: str = "items", ylabel: str = "users"):
    """Side-by-side grids of :func:`split_codes` matrices (one per protocol, keyed by its title), coloured by part,
    with one legend. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    palette = ["#f2f2f2", colours[0], colours[1 % len(colours)], colours[5 % len(colours)]]
    cmap = ListedColormap(palette)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5, 3.4), squeeze=False)
    for ax, (title, codes) in zip(axes[0], panels.items()):
        ax.imshow(codes, cmap=cmap, vmin=0, vmax=len(SPLIT_PARTS) - 1, interpolation="nearest", aspect="equal")
        ax.set_xticks(np.arange(-0.5, codes.shape[1], 1), minor=True)
        ax.set_yticks(np.arange(-0.5, codes.shape[0], 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6)
        ax.grid(which="major", visible=False)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(title, fontsize="small")
        ax.set_xlabel(xlabel)
        if ax is axes[0][0]:
            ax.set_ylabel(ylabel)
    fig.legend(handles=[Patch(color=c, label=p) for c, p in zip(palette, SPLIT_PARTS)], loc="lower center",
               ncol=len(SPLIT_PARTS), bbox_to_anchor=(0.5, -0.02))
    fig.subplots_adjust(bottom=0.18)
    return fig
