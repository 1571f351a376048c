"""The reaper of a Ray cluster a batch started on this machine, run as its own process beside the driver.

Ray ties its head processes to the driver, but not the agents the raylet starts (``ray::DashboardAgent``,
``ray::RuntimeEnvAgent``): when the driver is killed (``kill -9``, the OOM killer) they are re-parented to PID 1,
ignore SIGTERM and stay. Their titles are rewritten (``ray::...``) and their environment says nothing, but every
process of the cluster holds log files open in its session folder: that is how they are found.

The driver holds this process's stdin open; when the driver ends, however it ends, stdin closes, and this
process kills whatever still has files open in the session folder, then removes the folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SETTLE_S = 10.0  # how long to keep looking for stragglers (a worker may be starting as the driver dies)


def _holders(session: str, spare: set[int]) -> list[int]:
    """PIDs of processes with a file open under ``session`` (those we may see: ours)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in spare:
            continue
        try:
            links = (os.readlink(f.path) for f in os.scandir(f"/proc/{entry.name}/fd"))
            if any(link.startswith(session + os.sep) for link in links):
                found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours to look at
    return found


def reap(session: str, spare: set[int]) -> int:
    """Kill every process holding files in ``session`` (but ``spare``), then remove the folder and a
    ``session_latest`` link to it. Returns how many processes were killed."""
    killed: set[int] = set()
    quiet_since = time.monotonic()
    end = time.monotonic() + SETTLE_S
    while time.monotonic() < end and time.monotonic() - quiet_since < 1.0:
        for pid in _holders(session, spare):
            try:
                os.kill(pid, signal.SIGKILL)  # SIGTERM is ignored by the agents
                killed.add(pid)
                quiet_since = time.monotonic()
            except OSError:
                pass
        time.sleep(0.1)
    latest = Path(session).parent / "session_latest"
    if latest.is_symlink() and os.path.realpath(latest) == os.path.realpath(session):
        latest.unlink(missing_ok=True)
    shutil.rmtree(session, ignore_errors=True)
    return len(killed)


def start(session: str) -> subprocess.Popen:
    """The watchdog for the cluster whose session folder is ``session``: close its stdin (or die) to fire it."""
    return subprocess.Popen([sys.executable, "-m", __name__, session, str(os.getpid())], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(watchdog: subprocess.Popen, timeout_s: float = SETTLE_S + 5) -> None:
    """A clean end: fire the watchdog and wait for its sweep, so nothing is left when the batch returns."""
    try:
        watchdog.stdin.close()
        watchdog.wait(timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        pass


if __name__ == "__main__":
    session_dir, driver = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver must not skip the sweep
    sys.stdin.buffer.read()  # returns at EOF: the driver closed it or died
    reap(os.path.realpath(session_dir), {os.getpid(), driver})
