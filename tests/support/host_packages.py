"""Install the Debian packages a test needs on the host, when they are missing and we may.

Several suites start real programs from Debian packages (Slurm, Chromium, Graphviz).  CI runs as
root on a fresh Debian machine that has none of them, and README's test command is all it runs, so
the tests install what they need themselves.  Elsewhere (not root, no apt-get, no network) they
skip, and :func:`ensure_debian_packages` returns the reason to put in the skip message.

Concurrent test sessions may install at once: ``DPkg::Lock::Timeout`` makes apt-get wait for the
dpkg lock instead of failing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

_APT_TIMEOUT = 900.0
_LOCK_WAIT = "-oDPkg::Lock::Timeout=600"


def _missing(binaries: list[str]) -> list[str]:
    return [name for name in binaries if shutil.which(name) is None and not os.path.exists(name)]


def _apt(apt: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        [apt, _LOCK_WAIT, *args], capture_output=True, text=True, env=env, timeout=_APT_TIMEOUT
    )


def ensure_debian_packages(packages: list[str], binaries: list[str]) -> str | None:
    """Make ``binaries`` available by installing ``packages``; None when they are, else why not.

    ``binaries`` are command names looked up on PATH, or absolute paths (``/usr/sbin/slurmd`` is
    not on a non-root PATH).  Nothing is installed when they are all present already.
    """
    if not _missing(binaries):
        return None
    wanted = ", ".join(_missing(binaries))
    apt = shutil.which("apt-get")
    if apt is None:
        return f"{wanted} not installed, and no apt-get to install {' '.join(packages)}"
    if os.geteuid() != 0:
        return f"{wanted} not installed, and installing {' '.join(packages)} needs root"
    done = _apt(apt, ["install", "-y", *packages])
    if done.returncode != 0:  # a fresh machine may have no package lists yet, or stale ones
        update = _apt(apt, ["update"])
        if update.returncode != 0:
            return f"apt-get update failed ({update.returncode}): {update.stderr.strip()[-500:]}"
        done = _apt(apt, ["install", "-y", *packages])
        if done.returncode != 0:
            return f"apt-get install {' '.join(packages)} failed: {done.stderr.strip()[-500:]}"
    still = _missing(binaries)
    if still:
        return f"installed {' '.join(packages)} but {', '.join(still)} still missing"
    return None
