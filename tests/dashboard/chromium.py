"""Debian's Chromium for the dashboard's browser tests: found, installed with apt-get, or a reason.

Playwright's own browser downloads cannot work here (no internet but the package registries), so
the tests drive the distribution's ``chromium`` through Playwright's ``executable_path``.  Where it
is missing and ``apt-get`` can run (CI: a fresh Debian machine, as root), it is installed first,
as ``tests/htcondor/pool.py`` installs debootstrap.  Anything that stops that is a skip reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: Where Debian's package puts the browser (a wrapper script that runs /usr/lib/chromium/chromium).
CANDIDATES = ("chromium", "/usr/bin/chromium", "/usr/lib/chromium/chromium")
#: Root needs --no-sandbox; the rest keep a headless browser from reaching out to the network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APT_TIMEOUT = 900  # a hang guard for apt on a slow mirror, not a speed assertion


class ChromiumUnavailable(Exception):
    """Chromium is not here and cannot be installed; the message says why (tests skip with it)."""


def _find() -> str | None:
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _apt(args: list[str], log_file: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=300", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=APT_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    with log_file.open("a", encoding="utf-8") as stream:
        stream.write(f"$ apt-get {' '.join(args)}  # exit {done.returncode}\n{done.stdout}{done.stderr}\n")
    return done


def ensure_chromium(log_file: Path) -> str:
    """The path of a Chromium to drive, installing Debian's package if needed and possible."""
    found = _find()
    if found is not None:
        return found
    if shutil.which("apt-get") is None:
        raise ChromiumUnavailable("chromium is not installed and there is no apt-get to install it with")
    if os.geteuid() != 0:
        raise ChromiumUnavailable(
            f"chromium is not installed and apt-get needs root (running as uid {os.geteuid()}); "
            "install it with: apt-get install -y chromium"
        )
    install = ["install", "-y", "--no-install-recommends", "chromium"]
    done = _apt(install, log_file)
    if done.returncode != 0:  # a fresh machine has no (or stale) package lists
        _apt(["update"], log_file)
        done = _apt(install, log_file)
    found = _find()
    if done.returncode != 0 or found is None:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ChromiumUnavailable(f"apt-get install chromium failed (log {log_file}):\n{tail}")
    return found
