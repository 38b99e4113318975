"""Warm starts for local runs: a job's Python process forked from one that has already imported
torch and the stages.

Every job of a local run is a fresh ``python -m pipeline.stages.<rule>``, and importing torch,
torch._dynamo (which the first optimizer pulls in) and pandas takes about 3.5 s on a 2-core
machine: more than half of a small student's job. For the length of a local run (``onstart`` to
``onsuccess``/``onerror``), a server that imported them once forks one child per job; the job's own
process hands it its command line, working directory, environment, umask and standard streams,
forwards the signals it gets (SIGTERM still saves a training state) and exits with the child's
status. The command lines, outputs, logs and rerun rules are those of a cold start: the rules do
not change, a job that finds no server (a cluster job, ``PRUNE_DISTILL_COLD=1``, a server not up
yet or gone) starts cold. The server also reads the run's dataset, which its children share
(copy-on-write), on one torch thread: it starts no thread pool, so that forking it is safe.

What Snakemake's benchmark of a warm job measures is its launcher: its wall time is the job's,
its CPU time and memory are not; outputs record ``started: warm`` (``pipeline.io``) and
``costs.parquet`` leaves those two blank for such a job.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOCKET = "PRUNE_DISTILL_WARM"  # the server's socket path, for the jobs of a run
COLD = "PRUNE_DISTILL_COLD"  # set to 1: every job starts cold
STARTED = "PRUNE_DISTILL_STARTED"  # set to "warm" in a forked job: the outputs record it
# What a job imports before it runs: every stage, torch._dynamo (the first optimizer's 1.2 s)
PRELOAD = ["torch._dynamo", "pipeline.stages.aggregate", "pipeline.stages.datasets", "pipeline.stages.embeddings",
           "pipeline.stages.galleries",
           "pipeline.stages.pruned_teachers", "pipeline.stages.scores", "pipeline.stages.scores_summary",
           "pipeline.stages.students", "pipeline.stages.subsets", "pipeline.stages.teacher_view_std",
           "pipeline.stages.teacher_views", "pipeline.stages.teachers"]
MESSAGE_BYTES = 1 << 20


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
        signal.signal(number, lambda received, frame: _forward(pid, received))
    status = reply.readline()
    _exit_like(int(status) if status.strip() else 1)


def _forward(pid: int, number: int) -> None:
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


# The server's side

def serve(path: str, parent: int, data: dict | None) -> None:
    """Preload (the modules, and the dataset of ``data``), then fork a child per job that connects
    to ``path``, until ``parent`` (the Snakemake process) is gone or SIGTERM. No thread of its own,
    and torch on one thread while it reads the data, so that no thread pool exists when it forks
    (a fork copies only the calling thread)."""
    import importlib

    import torch

    from pipeline.cli import preload_data

    for module in PRELOAD:
        importlib.import_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    if data is not None:
        try:
            preload_data({**data, "download": False})  # a download is the datasets job's
        except Exception as error:  # noqa: BLE001 - the jobs read it themselves and report what is wrong
            print(f"not preloaded: {error}", file=sys.stderr)
    torch.set_num_threads(threads)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".new")
    os.rename(path + ".new", path)  # jobs see the socket only once it accepts
    listener.listen(64)
    running: dict[socket.socket, int] = {}  # a job's connection -> its child
    abandoned: set[socket.socket] = set()  # connections whose job's process is gone
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while os.getppid() == parent:
            ready, _, _ = select.select([listener, *(set(running) - abandoned)], [], [], 0.1)
            for connection in ready:
                if connection is listener:
                    job, _ = listener.accept()
                    child = _fork_job(job, listener, running)
                    if child is not None:
                        running[job] = child
                elif not connection.recv(1):  # the job's process was killed: so is its child
                    _forward(running[connection], signal.SIGKILL)
                    abandoned.add(connection)
            for job, child in list(running.items()):
                done, wait_status = os.waitpid(child, os.WNOHANG)
                if done:
                    try:
                        job.sendall(f"{wait_status}\n".encode())
                    except OSError:
                        pass
                    job.close()
                    del running[job]
                    abandoned.discard(job)
    finally:
        for child in running.values():
            _forward(child, signal.SIGTERM)
        Path(path).unlink(missing_ok=True)


def _fork_job(job: socket.socket, listener: socket.socket, running: dict) -> int | None:
    try:
        message, fds, _, _ = socket.recv_fds(job, MESSAGE_BYTES, 3)
        request = json.loads(message)
    except (OSError, ValueError):
        job.close()
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        job.sendall(f"{pid}\n".encode())
        return pid
    _run_child(request, fds, [listener, job, *running])


def _run_child(request: dict, fds: list[int], sockets: list[socket.socket]) -> None:
    """In the forked child: become the job's process, run its module as ``__main__``, exit."""
    code = 1
    try:
        for item in sockets:
            item.close()
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(number, signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"], **{STARTED: "warm"})
        os.umask(request["umask"])
        sys.argv = [request["module"], *request["argv"]]
        sys.modules.pop(request["module"], None)  # preloaded as a module; it runs afresh as __main__
        import runpy

        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if not isinstance(stop.code, (int, type(None))):
                print(stop.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - the job's traceback goes to its log, as a cold start's would
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


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
        _server = subprocess.Popen([sys.executable, "-m", "pipeline.warm", path, str(os.getpid()), json.dumps(data)],
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


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
