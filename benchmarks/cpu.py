"""Where a machine's cores go under a load: CPU time of a server's processes over a stretch
of wall-clock time.

A benchmark samples the server's process tree (found anew at each sample: a replaced worker
or a late matching process counts from when it appears) and reads, afterwards, what each
part used between two instants the load generator reported. Parts: "serving" (the
process(es) answering sockets: kefu's event loop and its store thread, or `--workers`' workers
and their supervisor), "matching" (kefu's matching processes, children started by
multiprocessing), and any process named on its own (redis-server).
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY_SECONDS = 0.05
# Finding the tree reads every process's stat (a few ms on the cores being measured), so it
# is done this often; samples in between read only the processes already found.
FIND_EVERY_SECONDS = 1.0
SERVING, MATCHING = "serving", "matching"


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used so far) of a live process, else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def _part(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return SERVING
    return MATCHING if b"multiprocessing" in command else SERVING


def _tree(root: int) -> dict[int, float]:
    """CPU seconds of `root` and each of its descendants, by pid (from every process's
    stat)."""
    parents: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat
    if root not in parents:
        return {}
    found, frontier = {root: parents[root][1]}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cpu) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = cpu
                frontier.append(pid)
    return found


@dataclass
class CpuSampler:
    """Samples, in a thread, the CPU time of the process tree under `root` and of the
    processes in `named` (part name -> pid) until the `with` block ends."""

    root: int
    named: dict[str, int] = field(default_factory=dict)
    every: float = SAMPLE_EVERY_SECONDS
    _times: list[float] = field(default_factory=list)
    _samples: list[dict[int, float]] = field(default_factory=list)
    _parts: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _found_at: float = float("-inf")

    def __enter__(self) -> CpuSampler:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def _sample(self) -> None:
        now = time.time()
        if now - self._found_at >= FIND_EVERY_SECONDS:
            sample, self._found_at = _tree(self.root), now
        else:
            sample = {pid: stat[1] for pid in self._parts
                      if pid not in self.named.values() and (stat := _stat(pid)) is not None}
        for pid in sample:
            if pid not in self._parts:
                self._parts[pid] = _part(pid)
        for name, pid in self.named.items():
            if (stat := _stat(pid)) is not None:
                sample[pid] = stat[1]
                self._parts[pid] = name
        self._times.append(now)
        self._samples.append(sample)

    def _at(self, pid: int, when: float) -> float:
        """The process's CPU seconds at `when` (time.time()), read off the samples in a
        straight line between the two around it; 0 before it was first seen."""
        i = bisect.bisect_left(self._times, when)
        if i == 0:
            return self._samples[0].get(pid, 0.0)
        if i == len(self._times):
            return self._last(pid, len(self._times))
        before, after = self._last(pid, i), self._samples[i].get(pid)
        if after is None:  # gone by the next sample
            return before
        share = (when - self._times[i - 1]) / (self._times[i] - self._times[i - 1])
        return before + (after - before) * share

    def _last(self, pid: int, i: int) -> float:
        """The last reading of the process in the samples before the i-th."""
        for sample in reversed(self._samples[:i]):
            if pid in sample:
                return sample[pid]
        return 0.0

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each part used between `start` and `end` (time.time() instants)."""
        used: dict[str, float] = {}
        for pid, part in self._parts.items():
            used[part] = used.get(part, 0.0) + max(0.0, self._at(pid, end) -
                                                    self._at(pid, start))
        return used
