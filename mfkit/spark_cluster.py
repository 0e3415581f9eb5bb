"""A standalone Spark cluster on this machine: one master and a few workers on 127.0.0.1, started and stopped by pid.

Spark's standalone cluster manager is three kinds of JVM: a **master** that keeps the list of workers, **workers**
that each offer a number of cores and an amount of memory, and the **executors** a worker launches (as its child
processes) for each application that asks for them. :class:`StandaloneCluster` starts the master and the workers
through pyspark's own ``bin/spark-class`` (``org.apache.spark.deploy.master.Master`` and
``org.apache.spark.deploy.worker.Worker``, the classes ``start-master.sh``/``start-worker.sh`` run), waits until
every worker has registered with the master (a bounded wait), and stops what it started by process id: each daemon
is started in a process group of its own (its pid is the group's id), so stopping the group also ends the executors
its worker launched, and nothing else.

Everything listens on 127.0.0.1 only (``SPARK_LOCAL_IP``; the master's and the workers' web UIs included, which
stop with their daemons); the master's RPC and UI ports are free ports chosen at start. The master's UI serves the
JSON the wait reads (``/json``: the registered workers and their state).

Three ways to run one, all this class:

- in Python, ``with StandaloneCluster(workers=2, cores=1, memory="1g") as cluster:`` and
  ``mfkit.spark.cluster_session(cluster.master_url)`` (the tests' fixture and Chapter 8);
- from a shell, ``python -m mfkit.spark_cluster start`` (``make spark-cluster``): the daemons keep running after the
  command returns, their pids in a state file; ``python -m mfkit.spark_cluster stop`` (``make spark-cluster-stop``)
  ends them;
- ``python -m mfkit.spark_cluster run -- CMD ...``: start, run ``CMD`` with ``MFKIT_SPARK_MASTER`` set to the
  master's URL, stop (also when ``CMD`` fails or the run is interrupted).

A cluster held by a Python process (the first and third way) also dies with that process: its daemons get SIGTERM
when the process that started them exits, even by a signal it cannot catch (Linux's parent-death signal, which
fires when the *thread* that started them ends: start a cluster from the main thread or from one that outlives it).

Used by: ``tests/test_spark.py``, Chapter 8 ("On a real cluster"), ``benchmarks/spark_vs_mfkit.py``, the Makefile.
"""
from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

__all__ = ["StandaloneCluster", "spark_home", "free_port", "pid_alive", "listening_sockets", "DEFAULT_STATE"]

HOST = "127.0.0.1"
DEFAULT_STATE = Path(".spark-cluster") / "state.json"
"""Where ``python -m mfkit.spark_cluster start`` records the daemons it left running (relative to the cwd)."""


def spark_home() -> Path:
    """pyspark's installation folder (it holds ``bin/spark-class`` and the jars)."""
    try:
        import pyspark
    except ImportError as err:
        raise ImportError('a standalone cluster needs pyspark 4.x: pip install "mfkit[spark]"') from err
    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _group_pids(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (Linux ``/proc``; just ``[pgid]`` elsewhere)."""
    if not os.path.isdir("/proc"):
        return [pgid] if pid_alive(pgid) else []
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                out.append(int(entry))
    return out


def listening_sockets(pids) -> list[tuple[str, int]]:
    """``(address, port)`` of the TCP sockets in LISTEN state that processes ``pids`` hold (Linux ``/proc``).

    IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are given as IPv4.
    """
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            addr, port = f[1].split(":")
            raw = bytes.fromhex(addr)
            if v6:  # four little-endian 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                ip = socket.inet_ntop(socket.AF_INET6, raw)
                ip = ip[7:] if ip.startswith("::ffff:") else ip
            else:
                ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out.append((ip, int(port, 16)))
    return sorted(out)


def _die_with_parent() -> None:
    """In the child before exec: a new session, and SIGTERM when the parent process exits (Linux only)."""
    os.setsid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class StandaloneCluster:
    """One Spark master and ``workers`` workers on 127.0.0.1, each worker with ``cores`` cores and ``memory``.

    Parameters
    ----------
    workers : int
        Number of workers (each its own JVM; each runs at most one executor of an application that asks for
        ``cores`` cores per executor).
    cores : int
        Cores each worker offers (``--cores``).
    memory : str
        Memory each worker offers its executors (``--memory``, e.g. ``"1g"``): an application's
        ``spark.executor.memory`` must not exceed it, or the worker never launches its executor.
    daemon_memory : str
        Heap of the master's and each worker's own JVM (``SPARK_DAEMON_MEMORY``).
    work_dir : str or None
        Folder for the daemons' logs and the workers' scratch space (executor logs, shuffle files); None: a
        temporary folder, removed at :meth:`stop`.
    die_with_parent : bool
        Daemons get SIGTERM when this Python process exits (True for a cluster a process holds; the CLI's
        ``start`` leaves it False so that the daemons outlive the command).

    Attributes (after :meth:`start`): ``master_url`` (``spark://127.0.0.1:PORT``), ``ui_url`` (the master's web UI,
    on 127.0.0.1), ``pids`` (master first, then the workers), ``start_seconds``.
    """

    def __init__(self, workers: int = 2, cores: int = 1, memory: str = "1g", daemon_memory: str = "256m",
                 work_dir: str | None = None, die_with_parent: bool = True):
        if int(workers) < 1 or int(cores) < 1:
            raise ValueError(f"workers and cores must be >= 1, got {workers} and {cores}")
        self.n_workers, self.cores, self.memory = int(workers), int(cores), str(memory)
        self.daemon_memory, self.die_with_parent = daemon_memory, die_with_parent
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else None
        self.master_url: str | None = None
        self.ui_url: str | None = None
        self.pids: list[int] = []
        self.start_seconds: float | None = None
        self._procs: list[subprocess.Popen] = []
        self._logs: list = []

    # -- start ----------------------------------------------------------------------------------------------------
    def _env(self) -> dict:
        env = dict(os.environ)
        home = spark_home()
        env.update({"SPARK_HOME": str(home), "SPARK_LOCAL_IP": HOST, "SPARK_PUBLIC_DNS": HOST,
                    "SPARK_DAEMON_MEMORY": self.daemon_memory, "SPARK_NO_DAEMONIZE": "1",
                    # one log4j configuration for every daemon: WARN and above, on stderr (into the log files)
                    "SPARK_LOG_DIR": str(self.work_dir), "SPARK_CONF_DIR": str(self.work_dir / "conf")})
        env.pop("PYSPARK_GATEWAY_PORT", None)
        env.pop("PYSPARK_GATEWAY_SECRET", None)
        return env

    def _launch(self, name: str, args: list[str]) -> None:
        log = open(self.work_dir / f"{name}.log", "ab")
        self._logs.append(log)
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        # a session of its own (its pid is its group's id): stop() ends the group, executors included
        proc = subprocess.Popen(cmd, env=self._env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                preexec_fn=_die_with_parent if self.die_with_parent else os.setsid)
        self._procs.append(proc)
        self.pids.append(proc.pid)

    def _write_conf(self) -> None:
        conf = self.work_dir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "log4j2.properties").write_text(
            "rootLogger.level = warn\nrootLogger.appenderRef.stderr.ref = console\n"
            "appender.console.type = Console\nappender.console.name = console\nappender.console.target = SYSTEM_ERR\n"
            "appender.console.layout.type = PatternLayout\n"
            "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n"
            # the lines the wait and the reader look for
            "logger.master.name = org.apache.spark.deploy.master.Master\nlogger.master.level = info\n"
            "logger.worker.name = org.apache.spark.deploy.worker.Worker\nlogger.worker.level = info\n")
        (conf / "spark-defaults.conf").write_text(
            "spark.master.rest.enabled false\n"   # no REST submission server
            "spark.ui.reverseProxy false\n"
            "spark.worker.cleanup.enabled false\n")

    def start(self, timeout: float = 180.0) -> "StandaloneCluster":
        """Start the master and the workers; return once every worker has registered.

        Raises RuntimeError (after stopping whatever it started) when the master or a worker exits, or when not
        every worker has registered within ``timeout`` seconds; the message ends with the daemons' last log lines.
        """
        if self.pids:
            raise RuntimeError("this cluster is already started; stop() it first")
        from .spark import check_java

        check_java()
        t0 = time.perf_counter()
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="mfkit-spark-cluster-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        port, ui = free_port(), free_port()
        self.master_url, self.ui_url = f"spark://{HOST}:{port}", f"http://{HOST}:{ui}"
        try:
            self._launch("master", ["org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port),
                                    "--webui-port", str(ui)])
            for w in range(self.n_workers):
                self._launch_worker(w)
            self.wait_for_workers(self.n_workers, timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.perf_counter() - t0
        atexit.register(self.stop)
        return self

    def _launch_worker(self, w: int) -> None:
        scratch = self.work_dir / f"worker-{w}"
        scratch.mkdir(exist_ok=True)
        self._launch(f"worker-{w}", ["org.apache.spark.deploy.worker.Worker", "--host", HOST, "--cores",
                                     str(self.cores), "--memory", self.memory, "--webui-port", str(free_port()),
                                     "--work-dir", str(scratch), self.master_url])
        if len(self.pids) > self.n_workers + 1:  # a restart: the new pid takes the old one's place
            self.pids[1 + w] = self.pids.pop()
            self._procs[1 + w] = self._procs.pop()

    def restart_worker(self, index: int, timeout: float = 180.0) -> None:
        """Start worker ``index`` again (after :meth:`kill_worker`) and wait until every worker is ALIVE."""
        if _group_pids(self.worker_pids[index]):
            raise RuntimeError(f"worker {index} (pid {self.worker_pids[index]}) is still running")
        old = self._procs[1 + index]
        try:
            old.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._launch_worker(index)
        self.wait_for_workers(self.n_workers, timeout)

    def listening(self) -> list[tuple[str, int]]:
        """``(address, port)`` of every TCP socket the cluster's processes listen on (Linux ``/proc``)."""
        return listening_sockets(self.processes())

    def state(self) -> dict:
        """The master's view (its UI's ``/json``): ``aliveworkers``, ``workers``, ``activeapps``..."""
        with urllib.request.urlopen(self.ui_url + "/json/", timeout=5) as r:
            return json.load(r)

    def alive_workers(self) -> int:
        """Workers the master lists as ALIVE (0 while the master is not yet answering)."""
        try:
            return sum(w.get("state") == "ALIVE" for w in self.state().get("workers", []))
        except (OSError, ValueError):
            return 0

    def wait_for_workers(self, n: int | None = None, timeout: float = 180.0) -> None:
        """Block until ``n`` (default: all) workers are ALIVE at the master; RuntimeError after ``timeout`` s."""
        n = self.n_workers if n is None else n
        deadline = time.monotonic() + timeout
        while True:
            dead = [p for p in self._procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a Spark daemon exited during start-up (pid {dead[0].pid}, exit code "
                                   f"{dead[0].returncode}).\n{self.log_tail()}")
            if self.alive_workers() >= n:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.alive_workers()} of {n} Spark workers registered with "
                                   f"{self.master_url} within {timeout:.0f} s.\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of each daemon's log."""
        out = []
        if self.work_dir is not None:
            for log in sorted(self.work_dir.glob("*.log")):
                text = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    # -- workers and processes ---------------------------------------------------------------------------------------
    @property
    def worker_pids(self) -> list[int]:
        return self.pids[1:]

    def processes(self) -> list[int]:
        """Every live process this cluster started: its daemons and the executors their workers launched."""
        return sorted(p for pgid in self.pids for p in _group_pids(pgid))

    def kill_worker(self, index: int = 0, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to worker ``index`` and the executors it launched (a lost machine, for a test)."""
        pgid = self.worker_pids[index]
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass

    # -- stop -----------------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 20.0) -> None:
        """End every process this cluster started (by process group: the workers' executors too); idempotent.

        SIGTERM first (workers before the master), SIGKILL for whatever is still there after ``timeout`` s.
        """
        groups = list(reversed(self.pids))
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + timeout
        for proc in self._procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        while any(_group_pids(g) for g in groups) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pgid in groups:
            if _group_pids(pgid):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for proc in self._procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for log in self._logs:
            log.close()
        self._procs, self._logs, self.pids = [], [], []
        if self._own_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None
        try:
            atexit.unregister(self.stop)
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self) -> "StandaloneCluster":
        return self if self.pids else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"StandaloneCluster({self.n_workers} workers x {self.cores} core(s), {self.memory} each, "
                f"master {self.master_url or 'not started'})")

    # -- a cluster left running by the CLI -------------------------------------------------------------------------
    def to_state(self) -> dict:
        return {"master_url": self.master_url, "ui_url": self.ui_url, "pids": self.pids,
                "work_dir": str(self.work_dir), "workers": self.n_workers, "cores": self.cores,
                "memory": self.memory}

    @classmethod
    def from_state(cls, state: dict) -> "StandaloneCluster":
        c = cls(state["workers"], state["cores"], state["memory"], work_dir=state["work_dir"])
        c._own_dir = True  # the CLI's start made it: its stop removes it
        c.master_url, c.ui_url, c.pids = state["master_url"], state["ui_url"], list(state["pids"])
        return c


# ---------------------------------------------------------------------------------------------------------------------
# Command line: start / stop / status / run
# ---------------------------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mfkit.spark_cluster",
                                     description="A standalone Spark cluster on 127.0.0.1 (master + workers).")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("start", "run"):
        p = sub.add_parser(name)
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--cores", type=int, default=1)
        p.add_argument("--memory", default="1g", help="memory each worker offers its executors")
        p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the workers")
    sub.choices["run"].add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    sub.add_parser("stop")
    sub.add_parser("status")
    for name in ("start", "stop", "status"):
        sub.choices[name].add_argument("--state", default=str(DEFAULT_STATE), help="state file (pids, URL)")
    args = parser.parse_args(argv)

    if args.cmd == "run":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("run needs a command: python -m mfkit.spark_cluster run -- CMD ARGS...")
        cluster = StandaloneCluster(args.workers, args.cores, args.memory)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        with cluster.start(args.timeout):
            print(f"Spark cluster up: {cluster.master_url} ({args.workers} workers x {args.cores} core(s), "
                  f"{args.memory} each), started in {cluster.start_seconds:.1f} s", flush=True)
            rc = subprocess.call(command, env={**os.environ, "MFKIT_SPARK_MASTER": cluster.master_url})
        print("Spark cluster stopped", flush=True)
        return rc

    state_file = Path(args.state)
    if args.cmd == "start":
        if state_file.exists():
            old = json.loads(state_file.read_text())
            if any(pid_alive(p) for p in old["pids"]):
                print(f"a cluster is already running: {old['master_url']} (pids {old['pids']}); "
                      f"stop it with: python -m mfkit.spark_cluster stop --state {state_file}")
                return 1
        state_file.parent.mkdir(parents=True, exist_ok=True)
        work = state_file.parent.resolve() / "work"
        shutil.rmtree(work, ignore_errors=True)
        cluster = StandaloneCluster(args.workers, args.cores, args.memory, work_dir=str(work),
                                    die_with_parent=False)
        cluster.start(args.timeout)
        atexit.unregister(cluster.stop)  # the daemons outlive this command
        state_file.write_text(json.dumps(cluster.to_state(), indent=1))
        print(f"{cluster.master_url}\nSpark cluster up ({args.workers} workers x {args.cores} core(s), "
              f"{args.memory} each; pids {cluster.pids}); use it with MFKIT_SPARK_MASTER={cluster.master_url}; "
              f"stop it with: python -m mfkit.spark_cluster stop --state {state_file}")
        return 0
    if not state_file.exists():
        print(f"no cluster recorded in {state_file}")
        return 0 if args.cmd == "stop" else 1
    cluster = StandaloneCluster.from_state(json.loads(state_file.read_text()))
    if args.cmd == "status":
        live = cluster.processes()
        print(f"{cluster.master_url}: {cluster.alive_workers()} workers alive; processes {live}")
        return 0 if live else 1
    cluster.stop()
    state_file.unlink()
    print(f"Spark cluster {cluster.master_url} stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
