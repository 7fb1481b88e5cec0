"""`kefu serve --workers N`: N kefu processes on one port, kept running by a supervisor.

One Python process uses one core (the interpreter lock), so a machine with more cores runs
more processes. Each worker is an ordinary `kefu serve` on the shared Redis store (the
many-process design of docs/deploy.md: every guarantee holds as for processes on separate
machines); they listen on the same address with SO_REUSEPORT, so the kernel spreads new
connections over them. The supervisor starts them, starts another when one dies (a
killed worker's customers reconnect and resume, as after any crash), passes SIGINT and
SIGTERM on, and gives up when workers keep dying at start-up (a mistake no restart fixes).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

QUICK_DEATH_SECONDS = 10.0  # a worker dying sooner than this after its start "died young"
YOUNG_DEATHS_TO_GIVE_UP = 3  # in a row
RESTART_PAUSE_SECONDS = 1.0


def worker_command(config: Path, host: str, port: int) -> list[str]:
    return [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())",
            "--config", str(config), "serve", "--host", host,
            "--port", str(port), "--workers", "1", "--reuse-port"]


def supervise(command: list[str], count: int) -> int:
    """Run `count` workers of `command` until SIGINT or SIGTERM; 0 on a clean stop, 1 when
    workers kept dying young."""
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in workers:  # reaped only by os.wait below: a pid here is still ours
            os.kill(child.pid, signum)

    started: dict[int, float] = {}
    workers: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        child = subprocess.Popen(command)
        started[child.pid] = time.monotonic()
        workers.append(child)
        log.info("worker %s started (%d of %d)", child.pid, len(workers), count)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    young_deaths = 0
    try:
        for _ in range(count):
            start()
        while workers:
            pid, status = os.wait()
            child = next((w for w in workers if w.pid == pid), None)
            if child is None:
                continue
            workers.remove(child)
            child.returncode = os.waitstatus_to_exitcode(status)
            if stopping:
                continue
            lived = time.monotonic() - started.pop(pid)
            young_deaths = young_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
            if young_deaths >= YOUNG_DEATHS_TO_GIVE_UP:
                log.error("workers keep exiting at start-up (the last with status %s): "
                          "stopping; see their messages above", child.returncode)
                stop(signal.SIGTERM, None)
                for other in workers:
                    os.waitpid(other.pid, 0)
                return 1
            log.warning("worker %s exited with status %s after %.0f s; starting another",
                        pid, child.returncode, lived)
            time.sleep(RESTART_PAUSE_SECONDS)
            if not stopping:
                start()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
