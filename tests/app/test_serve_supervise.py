"""`tag2mask serve --workers N` replaces an API worker that dies (kill -9, OOM killer)."""

import signal
import subprocess
import threading
import time

from app.serve import supervise


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"])


def test_a_killed_worker_is_replaced_and_the_others_are_left_alone():
    procs = [sleeper(), sleeper()]
    first, second = procs[0].pid, procs[1].pid
    stop = threading.Event()
    messages: list[str] = []
    t = threading.Thread(
        target=supervise,
        args=(procs, sleeper),
        kwargs={
            "should_stop": stop.is_set,
            "poll_s": 0.05,
            "min_uptime_s": 0.0,
            "log": messages.append,
        },
    )
    t.start()
    try:
        procs[0].send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while procs[0].pid == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert procs[0].pid != first and procs[0].poll() is None
        assert procs[1].pid == second
        assert len(messages) == 1 and str(first) in messages[0]
    finally:
        stop.set()
        t.join(timeout=10)
        for p in procs:
            p.kill()
            p.wait()


def test_a_worker_that_dies_at_once_is_not_respawned_in_a_loop():
    spawned: list[subprocess.Popen[bytes]] = []

    def failing() -> subprocess.Popen[bytes]:
        p = subprocess.Popen(["false"])
        spawned.append(p)
        return p

    procs = [failing()]
    stop = threading.Event()
    t = threading.Thread(
        target=supervise,
        args=(procs, failing),
        kwargs={"should_stop": stop.is_set, "poll_s": 0.01, "min_uptime_s": 0.5, "log": print},
    )
    t.start()
    time.sleep(1.2)
    stop.set()
    t.join(timeout=10)
    for p in spawned:
        p.wait()
    assert 2 <= len(spawned) <= 4  # one every min_uptime_s, not one every poll
