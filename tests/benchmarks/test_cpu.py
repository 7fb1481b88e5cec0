"""The benchmarks' CPU accounting: what a process tree used, part by part, in a window."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from benchmarks.cpu import CpuSampler

BUSY = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"
# A parent that starts a "matching" child (multiprocessing in its command line, as kefu's
# matching processes have), is busy itself, then both sleep.
PARENT = f"""
import subprocess, sys, time
named = "import multi" + "processing\\n"  # in the child's command line, not the parent's
busy = {BUSY.format(seconds=0.4)!r}
child = subprocess.Popen([sys.executable, "-c", named + busy + "time.sleep(5)"])
{BUSY.format(seconds=0.6)}
time.sleep(5)
"""


def test_cpu_is_counted_by_part_and_only_inside_the_window() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], start_new_session=True)
    try:
        with CpuSampler(parent.pid, every=0.02) as cpu:
            began = time.time()
            time.sleep(1.5)  # both are busy at first, then asleep
            middle = time.time()
            time.sleep(0.5)
            ended = time.time()
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # the child too
        parent.wait()
    busy = cpu.between(began, middle)
    assert 0.45 <= busy["serving"] <= 0.8
    assert 0.3 <= busy["matching"] <= 0.55
    asleep = cpu.between(middle, ended)
    assert asleep["serving"] < 0.05 and asleep["matching"] < 0.05
