"""The warm server of a local run (``pipeline.warm``): started at ``onstart`` as ``python -m
pipeline.warm_server SOCKET PARENT DATA``, it imports the stages and reads the run's dataset once,
then forks one child per job that connects, which becomes that job's process."""
from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import sys
from pathlib import Path

import torch

from pipeline.cli import preload_data
from pipeline.warm import MESSAGE_BYTES, PRELOAD, STARTED, forward_signal


def serve(path: str, parent: int, data: dict | None) -> None:
    """Preload (the modules, and the dataset of ``data``), then fork a child per job that connects
    to ``path``, until ``parent`` (the Snakemake process) is gone or SIGTERM. No thread of its own,
    and torch on one thread while it reads the data, so that no thread pool exists when it forks
    (a fork copies only the calling thread)."""
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
                    forward_signal(running[connection], signal.SIGKILL)
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
            forward_signal(child, signal.SIGTERM)
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


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
