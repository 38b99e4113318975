"""Warm starts for local runs: a job's Python process forked from one that has already imported
torch and the stages.

Every job of a local run is a fresh ``python -m pipeline.stages.<rule>``, and importing torch,
torch._dynamo (which the first optimizer pulls in) and pandas takes about 3.5 s on a 2-core machine:
more than half of a small student's job. For the length of a local run (``onstart`` to
``onsuccess``/``onerror``), a server that imported them once (``pipeline.warm_server``) forks one
child per job; the job's own process hands it its command line, working directory, environment,
umask and standard streams, forwards the signals it gets (SIGTERM still saves a training state) and
exits with the child's status. The command lines, outputs, logs and rerun rules are those of a cold
start: the rules do not change, a job that finds no server (a cluster job, ``PRUNE_DISTILL_COLD=1``,
a server not up yet or gone) starts cold. The server also reads the run's dataset, which its
children share (copy-on-write), on one torch thread: it starts no thread pool, so that forking it is
safe.

What Snakemake's benchmark of a warm job measures is its launcher: its wall time is the job's,
its CPU time and memory are not; outputs record ``started: warm`` (``pipeline.io``) and
``costs.parquet`` leaves those two blank for such a job.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SOCKET = "PRUNE_DISTILL_WARM"  # the server's socket path, for the jobs of a run
COLD = "PRUNE_DISTILL_COLD"  # set to 1: every job starts cold
STARTED = "PRUNE_DISTILL_STARTED"  # set to "warm" in a forked job: the outputs record it
# What a job imports before it runs: every stage, torch._dynamo (the first optimizer's 1.2 s)
PRELOAD = ["torch._dynamo", "pipeline.stages.aggregate", "pipeline.stages.datasets", "pipeline.stages.embeddings",
           "pipeline.stages.galleries",
           "pipeline.stages.pruned_teachers", "pipeline.stages.scores", "pipeline.stages.scores_summary",
           "pipeline.stages.students", "pipeline.stages.subsets", "pipeline.stages.teacher_view_std",
           "pipeline.stages.teacher_views", "pipeline.stages.teachers"]
MESSAGE_BYTES = 1 << 20  # the most a job's request may take


# The job's side

def started_as_module() -> str | None:
    """The module this process runs with ``python -m``, while it is being located (before it runs)."""
    argv = getattr(sys, "orig_argv", [])
    if sys.argv[:1] != ["-m"] or "-m" not in argv[:-1]:
        return None
    return argv[argv.index("-m") + 1]


def run_warm_if_served() -> None:
    """Run this ``python -m`` stage in a child of the run's server and exit with its status; return
    (a cold start) where there is no server to ask."""
    path, module = os.environ.get(SOCKET), started_as_module()
    if not path or module is None or os.environ.get(COLD) == "1":
        return
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
        request = {"module": module, "argv": sys.argv[1:], "cwd": os.getcwd(), "umask": current_umask(),
                   "env": {k: v for k, v in os.environ.items() if k != SOCKET}}
        socket.send_fds(connection, [json.dumps(request).encode()], [0, 1, 2])
        reply = connection.makefile("r")
        pid = int(reply.readline())
    except (OSError, ValueError):  # no server, or it went away before taking the job: start cold
        connection.close()
        return
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(number, lambda received, frame: forward_signal(pid, received))
    status = reply.readline()
    _exit_like(int(status) if status.strip() else 1)


def forward_signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def current_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; set it back at once
    os.umask(mask)
    return mask


def _exit_like(wait_status: int) -> None:
    """Exit as the child did: with its exit code, or killed by its signal."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(wait_status) if os.WIFEXITED(wait_status) else 1)


# The run's side (the Snakefile's onstart and onsuccess/onerror)

_server: subprocess.Popen | None = None
_folder = ""  # the server's socket and log


def start(data: dict | None = None, wait_seconds: float = 30.0) -> None:
    """Start the run's server (unless ``PRUNE_DISTILL_COLD=1``), which also reads the dataset of
    the config's ``data`` section, and point this process's jobs at it; jobs that start before it
    is up start cold. Its log: server.log beside the socket."""
    global _server, _folder
    if os.environ.get(COLD) == "1" or _server is not None:
        return
    _folder = tempfile.mkdtemp(prefix="prune-distill-warm-")
    path = os.path.join(_folder, "socket")
    env = {k: v for k, v in os.environ.items() if k != SOCKET}
    with open(os.path.join(_folder, "server.log"), "w") as log:
        _server = subprocess.Popen([sys.executable, "-m", "pipeline.warm_server", path, str(os.getpid()), json.dumps(data)],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + wait_seconds
    while not os.path.exists(path) and _server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.environ[SOCKET] = path


def stop() -> None:
    """Stop the run's server, if one was started: jobs started later start cold."""
    global _server
    os.environ.pop(SOCKET, None)
    if _server is None:
        return
    _server.terminate()
    try:
        _server.wait(10)
    except subprocess.TimeoutExpired:
        _server.kill()
    shutil.rmtree(_folder, ignore_errors=True)  # its socket and log
    _server = None
