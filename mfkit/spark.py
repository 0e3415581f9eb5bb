"""Matrix factorization on Apache Spark: :class:`SparkALS`, Spark MLlib's ALS behind mfkit's model interface.

Spark MLlib's ``pyspark.ml.recommendation.ALS`` (Meng et al. 2016) fits the same two models as mfkit's ALS solvers,
on data partitioned across a cluster. :class:`SparkALS` takes an :class:`~mfkit.data.Interactions`, hands its dense
user and item indices to Spark as a DataFrame (built from numpy through Arrow), fits, and collects the factors into
torch tensors, so that ``ranking_metrics``, ``evaluate``, ``recommend``, ``similar_items``, ``save`` and ``load``
work on it unchanged.

The objectives, in Spark's units (:func:`spark_als_loss`). Explicit (``implicit_prefs=False``), over the observed
ratings ``O``, with ``n_u``/``n_i`` the ratings of user ``u``/item ``i`` (the weighted-λ regularisation of ALS-WR,
Zhou et al. 2008):

.. math:: \\sum_{(u,i) \\in O} (r_{ui} - x_u^\\top y_i)^2
          + \\lambda \\Big(\\sum_u n_u \\lVert x_u \\rVert^2 + \\sum_i n_i \\lVert y_i \\rVert^2\\Big)

Implicit (``implicit_prefs=True``, Hu, Koren & Volinsky 2008), over *all* cells, with preference ``p = 1`` and
confidence ``c = 1 + α`` on an observed cell (every interaction counts once: ``r = 1``), ``p = 0`` and ``c = 1``
elsewhere:

.. math:: \\sum_{u,i} c_{ui} (p_{ui} - x_u^\\top y_i)^2
          + \\lambda \\Big(\\sum_u n_u \\lVert x_u \\rVert^2 + \\sum_i n_i \\lVert y_i \\rVert^2\\Big)

Dividing the implicit objective by ``1 + α`` gives mfkit's :class:`~mfkit.implicit.WeightedMF` objective (weight 1
on observed, ``w`` on unobserved cells) with ``w = 1 / (1 + α)``, ``reg = λ / (1 + α)`` and
``reg_scaling="count"``: the same minimiser. :func:`to_mfkit_params` and :func:`from_mfkit_params` convert.

Sessions: a ``spark`` session the caller passes is used as it is and never stopped. Without one,
:func:`local_session` starts one local session per process (``local[threads]``, UI off, log level WARN written to a
log file rather than the console, a temporary checkpoint directory), reused by every later fit and stopped at
interpreter exit (or by :func:`stop_local_session`). A session of your own needs ``sparkContext.setCheckpointDir``
for fits of more than a few dozen sweeps: without it Spark ignores ``checkpointInterval`` and the growing lineage
ends in a ``StackOverflowError``.

Used by: Chapter 8 ("Beyond one machine"), ``benchmarks/spark_vs_mfkit.py``.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from . import als
from .base import Recommender, check_float, check_int
from .data import Interactions
from .observed import observed_pairs
from .utils import progress

__all__ = ["SparkALS", "local_session", "cluster_session", "executor_ids", "executor_metrics", "session_master",
           "stop_session", "local_session_log", "local_session_start_seconds", "stop_local_session",
           "check_java", "to_mfkit_params", "from_mfkit_params", "spark_als_loss", "als_sweep",
           "check_spark_index_space", "INSTALL_HINT", "JAVA_HINT", "SPARK_INT_MAX"]

INSTALL_HINT = 'pip install "mfkit[spark]"'
"""How to install the Spark extra (pyspark 4.x)."""

JAVA_HINT = ("Spark needs a Java 17 (or newer) runtime: on Debian/Ubuntu run "
             "`sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless` (or `make java` in the book's "
             "repository); elsewhere install a JDK 17+ (https://adoptium.net) and set JAVA_HOME")
"""What to do when Java is missing or too old."""

SPARK_INT_MAX = 2 ** 31 - 1
"""Spark's ALS ids are 32-bit signed integers."""

_SESSION = None  # the local session this module started (reused across fits, stopped at exit)
_SESSION_STARTED_S: float | None = None
_CHECKPOINT_DIR: str | None = None
_SESSION_MASTER: str | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Environment: pyspark, Java, the session
# ---------------------------------------------------------------------------------------------------------------------
def _pyspark():
    """``import pyspark``, or an ImportError saying how to install it."""
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession  # noqa: F401
    except ImportError as err:
        raise ImportError(f"mfkit.spark needs pyspark 4.x, which is not installed: {INSTALL_HINT}") from err
    return pyspark


def check_java(java: str | None = None) -> int:
    """The major version of the Java runtime Spark will start; RuntimeError when it is missing or older than 17.

    ``java`` defaults to ``$JAVA_HOME/bin/java`` when ``JAVA_HOME`` is set, else ``java`` on the ``PATH``.
    """
    if java is None:
        home = os.environ.get("JAVA_HOME")
        java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not (os.path.isfile(java) or shutil.which(java)):
        raise RuntimeError(f"no Java runtime found (looked for {java or 'java on the PATH'}). {JAVA_HINT}")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(f"could not run `{java} -version` ({err}). {JAVA_HINT}") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise RuntimeError(f"could not read the Java version from `{java} -version`. {JAVA_HINT}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_392" is Java 8
        major = int(match.group(2))
    if major < 17:
        raise RuntimeError(f"{java} is Java {major}; Spark 4 needs 17 or newer. {JAVA_HINT}")
    return major


def _start_session(master: str, conf: dict):
    """Start the process's one managed session on ``master`` (UI off, JVM output to a log file, a checkpoint dir)."""
    global _SESSION, _SESSION_STARTED_S, _CHECKPOINT_DIR, _SESSION_MASTER
    _pyspark()
    from pyspark.sql import SparkSession

    check_java()
    t0 = time.perf_counter()
    builder = (SparkSession.builder.master(master).appName("mfkit")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    for key, value in conf.items():
        builder = builder.config(key, value)
    _CHECKPOINT_DIR = tempfile.mkdtemp(prefix="mfkit-spark-")
    # The JVM inherits this process's stdout/stderr: point them at a log file while it starts, so its messages
    # (start-up notes, WARN lines about this machine) go to <dir>/jvm.log instead of a notebook's cells.
    log = os.open(os.path.join(_CHECKPOINT_DIR, "jvm.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        for fd in (1, 2):
            os.dup2(log, fd)
        _SESSION = builder.getOrCreate()
    finally:
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(log)
    _SESSION_MASTER = master
    _SESSION.sparkContext.setLogLevel("WARN")
    # ALS's lineage grows with every sweep; past a few dozen its serialisation overflows the stack unless it is
    # checkpointed (every checkpoint_interval sweeps, only where a checkpoint directory is set). On a cluster the
    # directory must be one every executor can write: a local folder serves a cluster on this machine.
    _SESSION.sparkContext.setCheckpointDir(os.path.join(_CHECKPOINT_DIR, "checkpoints"))
    _SESSION_STARTED_S = time.perf_counter() - t0
    atexit.register(stop_local_session)  # registered after pyspark's own exit hook, so it runs before it
    return _SESSION


def _running(master_prefix: str):
    """The managed session when it runs and its master starts with ``master_prefix``; else None."""
    if _SESSION is not None and _SESSION.sparkContext._jsc is not None and \
            (_SESSION_MASTER or "").startswith(master_prefix):
        return _SESSION
    return None


def local_session(threads: int | None = None, driver_memory: str = "2g"):
    """The process's local Spark session, started on first use and reused afterwards.

    Parameters
    ----------
    threads : int or None
        Cores of ``local[threads]``; None: ``local[*]`` (every core). Only the first call's value counts: later
        calls return the running session (stop it with :func:`stop_local_session` to change it).
    driver_memory : str
        ``spark.driver.memory`` (the JVM heap of a local session, where all the work happens; it counts only when
        this call starts the process's first JVM).

    A process has one SparkContext: a running :func:`cluster_session` is stopped first. The JVM's console output
    goes to a log file (:func:`local_session_log`), removed with the session.

    Raises
    ------
    ImportError
        pyspark is not installed.
    RuntimeError
        No Java 17+ runtime.

    Used by: :class:`SparkALS` (when no session is passed), Chapter 8, ``benchmarks/spark_vs_mfkit.py``.
    """
    running = _running("local")
    if running is not None:
        return running
    stop_local_session()
    master = "local[*]" if threads is None else f"local[{check_int('threads', threads)}]"
    shuffle = "4" if threads is None else str(max(2 * int(threads), 2))
    return _start_session(master, {"spark.driver.memory": driver_memory, "spark.sql.shuffle.partitions": shuffle})


def cluster_session(master_url: str, executors: int = 2, executor_cores: int = 1, executor_memory: str = "1g",
                    driver_memory: str = "1g", timeout: float = 120.0):
    """A session on a standalone cluster (``spark://HOST:PORT``), back once ``executors`` executors have registered.

    Parameters
    ----------
    master_url : str
        The master, e.g. :class:`mfkit.spark_cluster.StandaloneCluster`'s ``master_url``.
    executors : int
        Executors to wait for; the application asks for ``executors * executor_cores`` cores in all
        (``spark.cores.max``), ``executor_cores`` per executor (``spark.executor.cores``).
    executor_memory : str
        ``spark.executor.memory``, each executor's JVM heap: at most the memory a worker offers, or no worker can
        launch the executor.
    driver_memory : str
        ``spark.driver.memory`` (counts only when this call starts the process's first JVM).
    timeout : float
        Seconds to wait for the executors; RuntimeError (the session stopped) when fewer registered.

    The driver binds to 127.0.0.1 and runs no UI. Only one SparkContext runs in a process: a running local session
    is stopped first, and :func:`stop_local_session` stops this one. Calling it again with the same master returns
    the running session.

    Used by: ``tests/test_spark.py``, Chapter 8 ("On a real cluster"), ``benchmarks/spark_vs_mfkit.py``.
    """
    running = _running(master_url)
    if running is not None:
        return running
    stop_local_session()
    executors, executor_cores = check_int("executors", executors), check_int("executor_cores", executor_cores)
    spark = _start_session(master_url, {
        "spark.driver.memory": driver_memory, "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1", "spark.executor.memory": executor_memory,
        "spark.executor.cores": str(executor_cores), "spark.cores.max": str(executors * executor_cores),
        "spark.sql.shuffle.partitions": str(max(2 * executors * executor_cores, 2)),
        # a lost executor's tasks are retried elsewhere (4 attempts); a fit never waits forever on resources
        "spark.scheduler.maxRegisteredResourcesWaitingTime": f"{int(timeout)}s",
        "spark.scheduler.minRegisteredResourcesRatio": "1.0"})
    deadline = time.monotonic() + timeout
    while len(executor_ids(spark)) < executors:
        if time.monotonic() > deadline:
            got = len(executor_ids(spark))
            stop_local_session()
            raise RuntimeError(f"{got} of {executors} executors registered with {master_url} within {timeout:.0f} s: "
                               f"are the workers up, and does each offer {executor_cores} core(s) and at least "
                               f"{executor_memory} (spark.executor.memory)?")
        time.sleep(0.25)
    return spark


def executor_ids(spark) -> list[str]:
    """Ids of the executors active in ``spark`` now (the driver left out), from the driver's status store."""
    summaries = spark.sparkContext._jsc.sc().statusStore().executorList(True)
    ids = [summaries.apply(j).id() for j in range(summaries.size())]
    return [i for i in ids if i != "driver"]


def executor_metrics(spark) -> pd.DataFrame:
    """Per executor, from the driver's status store (no UI needed): tasks and shuffle bytes, dead ones included.

    Columns: ``id``, ``host_port``, ``active``, ``cores``, ``completed_tasks``, ``failed_tasks``,
    ``shuffle_read_bytes``, ``shuffle_write_bytes``, ``max_memory_bytes``; the driver's row is left out. Totals
    since the session started: take the difference of two calls to see one fit's share.
    """
    store = spark.sparkContext._jsc.sc().statusStore()
    summaries = store.executorList(False)
    rows = []
    for j in range(summaries.size()):
        e = summaries.apply(j)
        if e.id() == "driver":
            continue
        rows.append({"id": e.id(), "host_port": e.hostPort(), "active": bool(e.isActive()),
                     "cores": int(e.totalCores()), "completed_tasks": int(e.completedTasks()),
                     "failed_tasks": int(e.failedTasks()), "shuffle_read_bytes": int(e.totalShuffleRead()),
                     "shuffle_write_bytes": int(e.totalShuffleWrite()), "max_memory_bytes": int(e.maxMemory())})
    return pd.DataFrame(rows, columns=["id", "host_port", "active", "cores", "completed_tasks", "failed_tasks",
                                       "shuffle_read_bytes", "shuffle_write_bytes", "max_memory_bytes"])


def session_master() -> str | None:
    """The master of the managed session (``local[2]``, ``spark://...``), None when none runs."""
    return _SESSION_MASTER if _running("") is not None else None


def local_session_log() -> str | None:
    """Path of the log file the managed session's JVM writes (None when none is running)."""
    return None if _CHECKPOINT_DIR is None else os.path.join(_CHECKPOINT_DIR, "jvm.log")


def local_session_start_seconds() -> float | None:
    """Seconds the running managed session took to start (for a cluster: until its executors registered)."""
    return _SESSION_STARTED_S


def stop_local_session() -> None:
    """Stop the session :func:`local_session` or :func:`cluster_session` started (nothing else); runs at exit."""
    global _SESSION, _SESSION_STARTED_S, _CHECKPOINT_DIR, _SESSION_MASTER
    if _SESSION is not None:
        try:
            _SESSION.stop()
        except Exception:  # noqa: BLE001 - the JVM is already gone (interpreter exit): nothing left to stop
            pass
        finally:
            _SESSION, _SESSION_STARTED_S, _SESSION_MASTER = None, None, None
    if _CHECKPOINT_DIR is not None:
        shutil.rmtree(_CHECKPOINT_DIR, ignore_errors=True)
        _CHECKPOINT_DIR = None


stop_session = stop_local_session


# ---------------------------------------------------------------------------------------------------------------------
# The parameter mapping and the objective
# ---------------------------------------------------------------------------------------------------------------------
def to_mfkit_params(reg: float, alpha: float) -> dict:
    """The :class:`~mfkit.implicit.WeightedMF` parameters with the same minimiser as Spark's implicit ALS.

    Spark's objective divided by ``1 + α`` (module docstring): ``unobserved_weight = 1 / (1 + α)``,
    ``reg = λ / (1 + α)``, ``reg_scaling="count"``.

    Used by: Chapter 8 (the parity cell), ``tests/test_spark.py``.
    """
    reg, alpha = check_float("reg", reg), check_float("alpha", alpha)
    return {"unobserved_weight": 1.0 / (1.0 + alpha), "reg": reg / (1.0 + alpha), "reg_scaling": "count"}


def from_mfkit_params(unobserved_weight: float, reg: float, reg_scaling="count") -> dict:
    """Spark's implicit ALS parameters (``reg`` = regParam, ``alpha``) for a WeightedMF with these settings.

    Only ``reg_scaling="count"`` has a Spark counterpart (Spark always scales λ by the row's count), and only
    ``0 < w <= 1`` (``α = 1/w − 1 >= 0``). ValueError otherwise.
    """
    w, reg = check_float("unobserved_weight", unobserved_weight, 0.0, strict=True), check_float("reg", reg)
    if w > 1:
        raise ValueError(f"unobserved_weight must be in (0, 1] to map to Spark's alpha = 1/w - 1 >= 0, got {w}")
    if reg_scaling != "count":
        raise ValueError(f"Spark scales regParam by each row's count: only reg_scaling='count' maps to it, got "
                         f"{reg_scaling!r}")
    alpha = 1.0 / w - 1.0
    return {"reg": reg * (1.0 + alpha), "alpha": alpha}


def _float64(factors) -> torch.Tensor:
    """Any model's factor table (tensor on any device, or array) as a float64 CPU tensor."""
    if torch.is_tensor(factors):
        return factors.detach().cpu().to(torch.float64)
    return torch.as_tensor(np.asarray(factors), dtype=torch.float64)


def spark_als_loss(user_factors, item_factors, data: Interactions, reg: float, implicit_prefs: bool = False,
                   alpha: float = 1.0) -> float:
    """Spark ALS's objective (module docstring) for any factors, summed, in float64.

    Parameters
    ----------
    user_factors, item_factors : (n_users, k), (n_items, k) tensors or arrays
        Any model's factors (a :class:`SparkALS`'s ``user_factors_``/``item_factors_``, a WeightedMF's...).
    data : Interactions
        The training data. Implicit: each distinct (user, item) pair counts once with ``r = 1``; explicit: needs
        ratings (duplicates count twice, as Spark sees them).
    reg : float
        Spark's ``regParam`` (λ), scaled per row by its count.
    implicit_prefs, alpha : Spark's parameters.

    Used by: Chapter 8 (parity of Spark's and mfkit's factors), ``tests/test_spark.py``.
    """
    U, V = _float64(user_factors), _float64(item_factors)
    if implicit_prefs:
        user, item = observed_pairs(data)
    else:
        if data.rating is None:
            raise ValueError("explicit ALS needs ratings: data carries none")
        user, item = data.user.astype(np.int64), data.item.astype(np.int64)
    u, i = torch.from_numpy(user), torch.from_numpy(item)
    s = (U[u] * V[i]).sum(1)
    if implicit_prefs:
        alpha = check_float("alpha", alpha)
        fit = torch.sum((U.T @ U) * (V.T @ V)) + torch.sum((1 + alpha) * (1 - s) ** 2 - s ** 2)
    else:
        fit = torch.sum((torch.from_numpy(data.rating.astype(np.float64)) - s) ** 2)
    n_u = torch.bincount(u, minlength=U.shape[0]).double()
    n_i = torch.bincount(i, minlength=V.shape[0]).double()
    penalty = reg * ((n_u * (U * U).sum(1)).sum() + (n_i * (V * V).sum(1)).sum())
    return float(fit + penalty)


def als_sweep(user_factors, item_factors, data: Interactions, reg: float, implicit_prefs: bool = False,
              alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One exact ALS sweep of Spark's objective (users, then items), in float64 on the CPU.

    For row ``u`` with observed columns ``I_u``, ``(Σ_{I_u} y yᵀ + λ n_u I) x_u = Σ_{I_u} r y`` (explicit) or
    ``(YᵀY + α Σ_{I_u} y yᵀ + λ n_u I) x_u = (1 + α) Σ_{I_u} y`` (implicit): the one ALS solver
    (:func:`mfkit.als.solve_rows`, exact Cholesky) with weights ``a = 1 + α`` and unobserved weight 1 (implicit),
    or targets ``r`` (explicit). Rows without data stay zero. Spark's factors are (near) its minimiser when one
    more sweep barely lowers :func:`spark_als_loss`.

    Returns the new ``(user_factors, item_factors)``. Used by: Chapter 8, ``tests/test_spark.py``.
    """
    U, V = _float64(user_factors).clone(), _float64(item_factors).clone()
    if implicit_prefs:
        user, item = observed_pairs(data)
        alpha = check_float("alpha", alpha)
        kw = dict(unobserved_weight=1.0, weights=torch.full((len(user),), 1.0 + alpha, dtype=torch.float64))
    else:
        if data.rating is None:
            raise ValueError("explicit ALS needs ratings: data carries none")
        user, item = data.user.astype(np.int64), data.item.astype(np.int64)
        kw = dict(targets=torch.from_numpy(data.rating.astype(np.float64)))
    for rows, cols, X, Y in ((user, item, U, V), (item, user, V, U)):
        obs = als.Observations(rows, cols, X.shape[0], Y.shape[0], dtype=torch.float64)
        als.solve_rows(Y, obs, X, reg * obs.counts.double(), **kw)
    return U, V


@contextmanager
def _arrow(spark):
    """Arrow transfers between pandas and Spark for the block; the session's own setting is restored after."""
    key = "spark.sql.execution.arrow.pyspark.enabled"
    before = spark.conf.get(key, None)
    spark.conf.set(key, "true")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        elif before != "true":
            spark.conf.set(key, before)


@contextmanager
def _quiet_pandas():
    """Silence pyspark 4.1's pandas-3 deprecation warning (its ``astype(copy=False)``), nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The copy keyword is deprecated")
        yield


def check_spark_index_space(n_users: int, n_items: int) -> None:
    """ValueError when dense user or item indices would not fit Spark's 32-bit integer ids."""
    for side, n in (("user", n_users), ("item", n_items)):
        if n - 1 > SPARK_INT_MAX:
            raise ValueError(f"{n:,} {side}s: Spark's ALS takes {side} ids as 32-bit integers (at most "
                             f"{SPARK_INT_MAX:,}), so indices up to {n - 1:,} do not fit; split the data or use "
                             "mfkit's own solvers")


# ---------------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------------
class SparkALS(Recommender):
    """Spark MLlib's ALS (explicit or implicit) behind mfkit's model interface.

    Parameters
    ----------
    n_factors : int
        Rank (Spark's ``rank``).
    reg : float
        Spark's ``regParam`` λ, multiplied by each row's count (ALS-WR).
    n_epochs : int
        ALS sweeps (Spark's ``maxIter``).
    implicit_prefs : bool
        False: explicit ratings (needs ratings; no biases). True: Hu et al.'s implicit model, every distinct
        (user, item) pair an interaction with ``r = 1`` (confidence ``1 + alpha``).
    alpha : float
        Hu et al.'s confidence slope (implicit only); maps to mfkit's ``unobserved_weight = 1 / (1 + alpha)``.
    n_blocks : int or None
        Spark's ``numUserBlocks`` and ``numItemBlocks`` (how the factors are partitioned); None: the session's
        default parallelism (its cores, locally).
    block_size : int
        Spark's ``blockSize`` (rows stacked per BLAS call when factors are gathered).
    checkpoint_interval : int
        Spark's ``checkpointInterval``: cut the lineage every this many sweeps (only where the SparkContext has a
        checkpoint directory, as the local session does).
    spark : SparkSession or None
        A running session, used as it is and never stopped; None: :func:`local_session` with ``threads``.
    threads : int or None
        Cores of the local session when this model starts it (None: all).
    device : str, torch.device or None
        Where the collected factors live for scoring; None: CUDA when available.
    random_state : int
        Spark's ``seed``.
    show_progress : bool or None
        A bar over the three stages (DataFrame, fit, collect); default follows ``$MFKIT_PROGRESS``.
    timeout : float or None
        Seconds Spark's fit may take: after that its jobs are cancelled and ``fit`` raises TimeoutError (a bounded
        wait, e.g. on a cluster that lost its workers); None: no limit. Any other failure of Spark's fit (tasks
        that failed ``spark.task.maxFailures`` times) raises RuntimeError with Spark's first error line.

    ``fit(train, valid)`` checks ``valid`` like every model but does not use it: Spark's ALS runs its ``maxIter``
    sweeps without per-sweep validation.

    Attributes
    ----------
    user_factors_, item_factors_ : (n_users, k), (n_items, k) float32 tensors on ``device_``
        Ordered by mfkit's dense index. A user or item that Spark's output lacks (it had no training row) gets a
        zero vector, so it scores 0 for every item.
    fit_seconds_ : float
        Wall-clock seconds of Spark's fit (DataFrame build and factor collection excluded).

    Used by: Chapter 8, ``benchmarks/spark_vs_mfkit.py``.
    """

    fitted_attributes = ("user_factors_", "item_factors_", "fit_seconds_")

    def __init__(self, n_factors: int = 10, reg: float = 0.1, n_epochs: int = 10, implicit_prefs: bool = False,
                 alpha: float = 1.0, n_blocks: int | None = None, block_size: int = 4096,
                 checkpoint_interval: int = 10, spark=None, threads: int | None = None, device=None,
                 random_state: int = 0, show_progress: bool | None = None, timeout: float | None = None):
        self.n_factors, self.reg = check_int("n_factors", n_factors), check_float("reg", reg)
        self.n_epochs = check_int("n_epochs", n_epochs)
        if not isinstance(implicit_prefs, (bool, np.bool_)):
            raise ValueError(f"implicit_prefs must be True or False, got {implicit_prefs!r}")
        self.implicit_prefs, self.alpha = bool(implicit_prefs), check_float("alpha", alpha)
        self.n_blocks = None if n_blocks is None else check_int("n_blocks", n_blocks)
        self.block_size = check_int("block_size", block_size)
        self.checkpoint_interval = check_int("checkpoint_interval", checkpoint_interval)
        self.spark, self.threads = spark, None if threads is None else check_int("threads", threads)
        self.device, self.random_state = device, check_int("random_state", random_state, 0)
        self.show_progress = show_progress
        self.timeout = None if timeout is None else check_float("timeout", timeout, 0.0, strict=True)

    @property
    def requires_ratings(self) -> bool:
        return not self.implicit_prefs

    @property
    def default_metric(self) -> str:
        return "ndcg" if self.implicit_prefs else "rmse"

    def _session(self):
        return self.spark if self.spark is not None else local_session(self.threads)

    def _frame(self, spark, train: Interactions):
        """The training data as a Spark DataFrame (user, item: int32 dense indices; rating: float32), via Arrow."""
        if self.implicit_prefs:
            user, item = observed_pairs(train)
            rating = np.ones(len(user), dtype=np.float32)
        else:
            user, item, rating = train.user, train.item, train.rating.astype(np.float32)
        pdf = pd.DataFrame({"user": user.astype(np.int32), "item": item.astype(np.int32), "rating": rating})
        with _arrow(spark), _quiet_pandas():
            return spark.createDataFrame(pdf)

    def _fit(self, train: Interactions, valid: Interactions | None = None) -> None:
        check_spark_index_space(train.n_users, train.n_items)
        _pyspark()
        from pyspark.ml.recommendation import ALS

        bar = progress(total=3, desc="SparkALS", enabled=self.show_progress)
        spark = self._session()
        frame = self._frame(spark, train)
        bar.update()
        blocks = self.n_blocks or max(1, min(spark.sparkContext.defaultParallelism, 64))
        als = ALS(rank=self.n_factors, maxIter=self.n_epochs, regParam=self.reg, implicitPrefs=self.implicit_prefs,
                  alpha=self.alpha, userCol="user", itemCol="item", ratingCol="rating", seed=self.random_state,
                  numUserBlocks=blocks, numItemBlocks=blocks, blockSize=self.block_size,
                  checkpointInterval=self.checkpoint_interval, coldStartStrategy="nan")
        t0 = time.perf_counter()
        fitted = self._bounded_fit(spark, als, frame)
        self.fit_seconds_ = time.perf_counter() - t0
        bar.update()
        self.user_factors_ = self._collect(fitted.userFactors, train.n_users)
        self.item_factors_ = self._collect(fitted.itemFactors, train.n_items)
        bar.update()
        bar.close()

    def _bounded_fit(self, spark, als, frame):
        """``als.fit(frame)`` under a job group that a timer cancels after ``timeout`` s; Spark errors made clear."""
        from py4j.protocol import Py4JJavaError

        sc = spark.sparkContext
        group = f"mfkit-sparkals-{id(self)}-{time.monotonic_ns()}"
        sc.setJobGroup(group, "SparkALS.fit", interruptOnCancel=True)
        timer = None
        if self.timeout is not None:
            # this group's running jobs and any it starts later (ALS.fit runs a chain of jobs)
            timer = threading.Timer(self.timeout, sc._jsc.sc().cancelJobGroupAndFutureJobs,
                                    args=(group, f"SparkALS timeout={self.timeout:g} s"))
            timer.daemon = True
            timer.start()
        t0 = time.monotonic()
        try:
            return als.fit(frame)
        except Py4JJavaError as err:
            first = str(err.java_exception).splitlines()[0] if err.java_exception is not None else str(err)
            elapsed = time.monotonic() - t0
            if self.timeout is not None and elapsed >= self.timeout * 0.99:
                raise TimeoutError(f"Spark's ALS fit did not finish within timeout={self.timeout:g} s and was "
                                   f"cancelled ({first})") from None
            raise RuntimeError(f"Spark's ALS fit failed after {elapsed:.0f} s on {sc.master}: {first} (lost "
                               "executors or workers are retried up to spark.task.maxFailures times; see the "
                               "driver's log, mfkit.spark.local_session_log())") from None
        finally:
            if timer is not None:
                timer.cancel()
            sc.setLocalProperty("spark.jobGroup.id", None)
            sc.setLocalProperty("spark.job.description", None)
            sc.setLocalProperty("spark.job.interruptOnCancel", None)

    def _collect(self, factors, n: int) -> torch.Tensor:
        """Spark's ``(id, features)`` rows as an ``(n, k)`` tensor ordered by id; ids Spark lacks get zeros."""
        with _arrow(factors.sparkSession), _quiet_pandas():
            pdf = factors.toPandas()
        out = np.zeros((n, self.n_factors), dtype=np.float32)
        if len(pdf):
            out[pdf["id"].to_numpy()] = np.stack(pdf["features"].to_numpy()).astype(np.float32)
        return torch.from_numpy(out).to(self.device_)

    # -- scoring ------------------------------------------------------------------------------------------------------
    def score_users(self, users) -> torch.Tensor:
        """``x_u · y_i`` for every item: ``(len(users), n_items)``."""
        u = self._user_index(users)
        with torch.no_grad():
            return self.user_factors_[u] @ self.item_factors_.T

    def predict(self, users, items) -> torch.Tensor:
        """``x_u · y_i`` of (user, item) index pairs (explicit: the predicted rating, Spark has no biases)."""
        u, i = self._user_index(users), self._item_index(items)
        if u.shape != i.shape:
            raise ValueError(f"users and items must have one length, got {u.numel()} and {i.numel()}")
        with torch.no_grad():
            return (self.user_factors_[u] * self.item_factors_[i]).sum(1)

    def score(self, test: Interactions, clip=(1, 5)) -> dict:
        """RMSE and MAE on ``test`` (explicit models; :func:`mfkit.base.rating_errors`)."""
        from .base import rating_errors

        return rating_errors(self, test, clip)

    def _item_vectors(self) -> torch.Tensor:
        return self.item_factors_

    def loss(self, data: Interactions | None = None) -> float:
        """:func:`spark_als_loss` of the fitted factors on ``data`` (default: the training data)."""
        self._check_fitted()
        return spark_als_loss(self.user_factors_, self.item_factors_, self.train_ if data is None else data,
                              self.reg, self.implicit_prefs, self.alpha)
