"""API worker processes that each accept on their own SO_REUSEPORT socket.

`uvicorn --workers N` shares one listening socket between its workers, and whichever
worker wakes first accepts every connection that is waiting: 64 keep-alive connections
opened at once landed 53/11 on two workers in bench/load.py, so one worker queued while
the other idled. With a socket per worker bound with SO_REUSEPORT, the kernel spreads new
connections over the workers by a hash of the address pair instead.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def uvicorn_command(*args: str) -> list[str]:
    """`uvicorn app.main:create_app --factory ARGS...` with this interpreter."""
    return [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", *args]


def reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def spawn_workers(
    host: str,
    port: int,
    workers: int,
    uvicorn_args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> list[subprocess.Popen[bytes]]:
    """Start `workers` processes of `python -m app.serve --fd FD UVICORN_ARGS`.

    Every socket is bound before the first worker starts, so no connection can land on a
    port that only some workers listen on. `uvicorn_args`: --loop, --http, --log-level,
    --no-access-log.
    """
    socks = [reuse_port_socket(host, port) for _ in range(workers)]
    procs = []
    try:
        for sock in socks:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app.serve", "--fd", str(sock.fileno()), *uvicorn_args],
                    pass_fds=[sock.fileno()],
                    env=None if env is None else dict(env),
                    cwd=cwd,
                )
            )
    finally:
        for sock in socks:
            sock.close()  # each child holds its own copy
    return procs


def stop_workers(procs: Sequence[subprocess.Popen[bytes]], timeout_s: float = 30) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def supervise(
    procs: list[subprocess.Popen[bytes]],
    respawn: Callable[[], subprocess.Popen[bytes]],
    *,
    should_stop: Callable[[], bool] = lambda: False,
    poll_s: float = 0.5,
    min_uptime_s: float = 5.0,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> None:
    """Replace any worker of `procs` (in place) that exits, until `should_stop()`.

    A worker killed mid-request (OOM killer, kill -9) loses only its own connections; the
    others keep serving on their sockets meanwhile, and its replacement binds a new one.
    One that dies within `min_uptime_s` of its start is replaced only after that much
    time, so a worker that cannot start does not spin.
    """
    started = {p.pid: time.monotonic() for p in procs}
    while not should_stop():
        for i, p in enumerate(procs):
            code = p.poll()
            if code is None:
                continue
            up = time.monotonic() - started.pop(p.pid, 0.0)
            if up < min_uptime_s:
                time.sleep(min_uptime_s - up)
                if should_stop():
                    return
            new = respawn()
            started[new.pid] = time.monotonic()
            procs[i] = new
            log(f"API worker {p.pid} exited ({code}); started {new.pid} in its place")
        time.sleep(poll_s)


def _worker(argv: Sequence[str]) -> None:
    """One worker on an inherited listening socket.

    Not `uvicorn --fd`: uvicorn takes such a socket for a UNIX one, so the connections get
    no TCP_NODELAY, and a response written in two parts waited 40 ms for a delayed ACK.
    """
    import argparse

    import uvicorn

    ap = argparse.ArgumentParser(prog="python -m app.serve")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--loop", default="auto")
    ap.add_argument("--http", default="auto")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--no-access-log", action="store_true")
    args = ap.parse_args(argv)
    sock = socket.socket(fileno=args.fd)  # family and type read from the socket itself
    config = uvicorn.Config(
        "app.main:create_app",
        factory=True,
        loop=args.loop,
        http=args.http,
        log_level=args.log_level,
        access_log=not args.no_access_log,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    _worker(sys.argv[1:])
