"""A ``python`` that starts in a fraction of a second, for tests that run many short commands (the doc runner).

Each ``python -m lightning_ssl ...`` pays about 8 s importing torch (with torch._dynamo, through Lightning) and all
of MONAI before it does anything. ``serve`` imports them once and then forks a child per command; ``python
warm_python.py SOCKET ARGS...`` (the client, which imports nothing heavy) hands the child its arguments, working
folder, environment and standard streams over a Unix socket and exits with the child's exit status.

Only what a fresh interpreter would do the same way is run warm: ``-m MODULE``, ``-c CODE``, ``-`` (a script on
standard input) and ``SCRIPT.py``; anything else (``-X``, ``-u``...) runs the real interpreter. Modules that read
the environment when imported (huggingface_hub's endpoint and cache) see the server's: start it with the environment
the commands get (``doc_runner.warm_python`` does).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import traceback

HEAVY = ("torch", "pytorch_lightning", "monai", "lightning_ssl.cli", "lightning_ssl.train", "lightning_ssl.zoo")
WARM_OPTIONS = ("-m", "-c", "-")


def runs_warm(argv: list[str]) -> bool:
    """Whether ``python ARGV`` is a form the warm interpreter runs as a fresh one would."""
    return bool(argv) and (argv[0] in WARM_OPTIONS or not argv[0].startswith("-"))


def serve(path: str) -> None:
    """Import the heavy modules, then fork a child for every client that connects to ``path``."""
    import importlib

    for module in HEAVY:
        importlib.import_module(module)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children; the client gets their status
    while True:
        connection, _ = server.accept()
        if os.fork() == 0:
            try:
                server.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the command's own subprocesses are waited for as usual
                _child(connection)
            finally:
                os._exit(1)  # a child never returns to the accept loop
        connection.close()


def _child(connection: socket.socket) -> None:
    """Become the client's process: its streams, folder, environment and arguments; send back the exit status."""
    message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
    request = json.loads(message)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own streams, open for its life
    sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    status = _run(request["argv"])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a reader that went away (``| head``), as a fresh interpreter would ignore at exit
            pass
    connection.sendall(str(status).encode())
    os._exit(status)


def _run(argv: list[str]) -> int:
    """Run ``python ARGV`` in this process; its exit status."""
    import runpy

    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        elif argv[0] in ("-c", "-"):
            source = argv[1] if argv[0] == "-c" else sys.stdin.read()
            sys.argv = [argv[0], *argv[2 if argv[0] == "-c" else 1 :]]
            exec(compile(source, "<string>" if argv[0] == "-c" else "<stdin>", "exec"), {"__name__": "__main__"})  # noqa: S102
        else:
            sys.argv = list(argv)
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as stop:
        code = stop.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - reported as a fresh interpreter would
        traceback.print_exc()
        return 1
    return 0


def client(path: str, argv: list[str]) -> int:
    """Run ``python ARGV`` in a child of the server at ``path`` (or the real interpreter for other forms)."""
    if not runs_warm(argv):
        os.execv(sys.executable, [sys.executable, *argv])
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(path)
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(connection, [request], [0, 1, 2])
    connection.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := connection.recv(64):
        answer += chunk
    return int(answer) if answer else 1


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2])
    sys.exit(client(sys.argv[1], sys.argv[2:]))
