"""A real one-machine HTCondor pool for the tests: Debian 13's ``minicondor`` in a cached chroot.

Debian 12 has no HTCondor package; Debian 13 (trixie) has ``minicondor``, a complete pool on one
machine.  This module builds a trixie chroot with it once, keeps it under
``/var/cache/skybatch/htcondor-<key>/root`` and starts a pool in it for each test session:

* :func:`ensure_chroot` builds or reuses the chroot: ``debootstrap --variant=minbase trixie``,
  ``apt-get install minicondor python3 python3-venv``, our condor settings
  (:data:`CONDOR_SETTINGS`), the unprivileged user ``skybatch`` and a venv (:data:`VENV`) that
  sees the HTCondor Python bindings Debian ships with condor (``htcondor``, ``htcondor2``,
  ``classad``, ``classad2``).  The ``<key>`` hashes :data:`SETUP_VERSION` with everything that
  shapes the build, so a change to the setup builds a new chroot and deletes the old one.  A lock
  file serialises concurrent callers; the chroot is built under ``.partial`` and renamed when done.
* :func:`start_pool` mounts proc, sys, dev and the repository (at :data:`PROJECT_MOUNT`), refreshes
  the editable install of the project in the venv when ``pyproject.toml`` changed, starts
  ``condor_master`` and waits until a slot and the schedd are advertised.
* :meth:`Pool.stop` shuts the pool down, kills whatever still runs in the chroot and unmounts
  everything, checked against ``/proc/mounts``.

Only one pool runs per chroot at a time (a lock held for the pool's lifetime); a pool left behind
by a killed run is stopped by the next :func:`start_pool`.  Standard library only, no pytest:
``conftest.py`` wraps it in a fixture, and developers run it as a script::

    python tests/htcondor/pool.py prepare|start|stop|status|shell

Errors: :class:`PoolError` (the pool misbehaved) and its subclass :class:`PoolUnavailable` (this
machine cannot have a pool: not root, no network and no cache, a package download failed, the
pool is busy); tests skip on the latter and fail on the former.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType

log = logging.getLogger("skybatch.htcondor_pool")

#: Bump to rebuild every cached chroot after a change the recipe below does not capture.
SETUP_VERSION = "1"
SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("minicondor", "python3", "python3-venv")
#: Installed into the venv at build time, so editable installs need no build isolation.
VENV_BUILD_PACKAGES = ("setuptools>=64",)
CACHE_DIR = Path(os.environ.get("SKYBATCH_POOL_CACHE", "/var/cache/skybatch"))
USER = "skybatch"
UID = GID = 7990
HOME = PurePosixPath("/home/skybatch")
#: Where :meth:`Pool.make_workdir` puts per-test directories (emptied at each start, kept after).
WORK = HOME / "work"
PROJECT_MOUNT = PurePosixPath("/skybatch")
VENV = PurePosixPath("/opt/skybatch-venv")
CONDOR_CONFIG = PurePosixPath("/etc/condor/condor_config")
CONFIG_FILE = PurePosixPath("/etc/condor/config.d/99-skybatch")
#: Written at each start: a free collector port, so the pool never collides with another on 9618.
PORT_FILE = PurePosixPath("/etc/condor/config.d/99-skybatch-port")
CONDOR_SETTINGS = """\
# Written by skybatch tests/htcondor/pool.py: a one-machine test pool inside a chroot.
# Without these two every job fails with "Failed to unshare the mount namespace".
MOUNT_UNDER_SCRATCH =
USE_PID_NAMESPACES = False
# condor_master runs as root: keep it away from the host kernel's sysctls and cgroups.
ENABLE_KERNEL_TUNING = False
BASE_CGROUP =
# Loopback only (the collector port is chosen per start, see PORT_FILE).
ENABLE_IPV6 = False
# Fast turnaround for short test jobs.
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 2
SCHEDD_MIN_INTERVAL = 1
STARTER_UPDATE_INTERVAL = 2
DAGMAN_USER_LOG_SCAN_INTERVAL = 1
# Job policy (periodic_hold/remove, used for memory retries) is evaluated every 2 s, not 60 s.
PERIODIC_EXPR_INTERVAL = 2
"""
#: The repository this file belongs to; bind-mounted at PROJECT_MOUNT.
REPO = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
BUILT = "built.json"
#: Condor state emptied at each start, so nothing of an earlier run (queued jobs) comes back.
STATE_DIRS = (
    "var/spool/condor",
    "var/lib/condor/execute",
    "var/log/condor",
    "run/condor",
    "var/lock/condor",
    "tmp",
)
#: Host environment variables passed into the chroot (a proxy, if this machine needs one).
PASSED_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


class PoolError(RuntimeError):
    """The pool could not be built, started or stopped properly."""


class PoolUnavailable(PoolError):
    """This machine cannot have a pool now (tests skip with the message)."""


class PoolBusy(PoolUnavailable):
    """Another process holds the pool or the build lock past the timeout."""


# --- small helpers -------------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")
    if found is None:
        raise PoolUnavailable(f"{name} is not installed")
    return found


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _passed_env() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSED_ENV if name in os.environ}


def _run(
    argv: Sequence[str],
    *,
    timeout: float,
    what: str,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    error: type[PoolError] = PoolError,
) -> subprocess.CompletedProcess[str]:
    """Run a host command; raise ``error`` with the output's tail if it fails."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        raise error(f"{what} did not finish within {timeout:.0f} s") from err
    if log_file is not None:
        with log_file.open("a") as stream:
            stream.write(
                f"$ {' '.join(argv)}  # {time.monotonic() - started:.1f} s, exit {done.returncode}\n"
            )
            stream.write(done.stdout + done.stderr)
    if done.returncode:
        raise error(f"{what} failed (exit {done.returncode}):\n{_tail(done.stderr or done.stdout)}")
    return done


def _chroot_argv(
    root: Path,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    as_user: bool,
    cwd: str | PurePosixPath | None = None,
) -> list[str]:
    """``chroot [--userspec] ROOT env -i [--chdir] VAR=... ARGV``: a clean environment inside."""
    cmd = [_tool("chroot")]
    if as_user:
        cmd += [f"--userspec={UID}:{GID}", f"--groups={GID}"]
    cmd += [str(root), "/usr/bin/env", "-i"]
    if cwd is not None:
        cmd.append(f"--chdir={cwd}")
    cmd += [f"{name}={value}" for name, value in env.items()]
    return cmd + list(argv)


def _root_env() -> dict[str, str]:
    return {
        "PATH": SYSTEM_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "CONDOR_CONFIG": str(CONDOR_CONFIG),
        "DEBIAN_FRONTEND": "noninteractive",
        "PIP_CERT": f"/{CA_BUNDLE}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **_passed_env(),
    }


def _user_env() -> dict[str, str]:
    return {
        "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(HOME),
        "USER": USER,
        "LOGNAME": USER,
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": str(VENV),
        "CONDOR_CONFIG": str(CONDOR_CONFIG),
    }


def _in_root(
    root: Path,
    argv: Sequence[str],
    *,
    timeout: float,
    what: str,
    log_file: Path | None = None,
    error: type[PoolError] = PoolError,
) -> subprocess.CompletedProcess[str]:
    """Run a command as root inside the chroot."""
    return _run(
        _chroot_argv(root, argv, env=_root_env(), as_user=False),
        timeout=timeout,
        what=what,
        log_file=log_file,
        error=error,
    )


class _FileLock:
    """An exclusive ``flock`` on a file that also records the holder's pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float, what: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.path.read_text().strip() or "?"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise PoolBusy(f"{what} is in use by pid {holder} (lock {self.path})") from None
                if not waiting:
                    log.info("waiting for %s, held by pid %s", what, holder)
                    waiting = True
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def try_acquire(self) -> bool:
        try:
            self.acquire(0, str(self.path))
        except PoolBusy:
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# --- mounts and processes under a directory ------------------------------------------------------


def _under(path: str, top: Path) -> bool:
    return path == str(top) or path.startswith(f"{top}/")


def mounts_under(top: Path) -> list[str]:
    """Mount points at or below ``top``, in /proc/mounts order (parents before children)."""
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[1])
        if _under(target, top):
            found.append(target)
    return found


def processes_in(top: Path) -> list[int]:
    """Pids of processes whose root directory is ``top`` or below (everything of the pool)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if _under(os.readlink(entry / "root"), top):
                    pids.append(int(entry.name))
            except OSError:  # gone, or a kernel thread
                continue
    return pids


def _mount(*args: str) -> None:
    _run([_tool("mount"), *args], timeout=30, what=f"mount {' '.join(args)}")


def _mount_private(target: Path, *args: str) -> None:
    """Mount, then make the mount private so nothing propagates to or from the host's mounts."""
    _mount(*args, str(target))
    _mount("--make-private", str(target))


def _mount_system(root: Path) -> None:
    """proc (its sys read-only), a read-only sysfs, the host's /dev and /dev/pts, a fresh /dev/shm."""
    _mount_private(root / "proc", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc")
    _mount_private(root / "proc/sys", "--bind", str(root / "proc/sys"))
    _mount("-o", "remount,bind,ro", str(root / "proc/sys"))
    _mount_private(root / "sys", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs")
    _mount_private(root / "dev", "--bind", "/dev")
    _mount_private(root / "dev/pts", "--bind", "/dev/pts")
    _mount_private(root / "dev/shm", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev,size=2g", "tmpfs")


def _unmount_all(top: Path) -> None:
    """Unmount everything at or below ``top``, children first; raise if anything stays mounted."""
    umount = _tool("umount")
    for _ in range(3):
        remaining = mounts_under(top)
        if not remaining:
            return
        for target in reversed(remaining):
            if subprocess.run([umount, target], capture_output=True).returncode:
                time.sleep(0.2)
                if subprocess.run([umount, target], capture_output=True).returncode:
                    log.warning("%s is busy; detaching it lazily", target)
                    subprocess.run([umount, "-l", target], capture_output=True)
    remaining = mounts_under(top)
    if remaining:
        raise PoolError(f"could not unmount {', '.join(remaining)}")


def _kill_all(top: Path, grace: float) -> None:
    """Wait up to ``grace`` seconds for the processes in ``top`` to end, then SIGKILL them."""
    deadline = time.monotonic() + grace
    while processes_in(top) and time.monotonic() < deadline:
        time.sleep(0.2)
    for _ in range(10):
        pids = processes_in(top)
        if not pids:
            return
        log.info("killing %d process(es) left in %s", len(pids), top)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3)
    raise PoolError(f"processes {processes_in(top)} in {top} survive SIGKILL")


def shutdown(root: Path, *, grace: float = 15.0) -> None:
    """Stop whatever pool runs in ``root`` and unmount everything below it (idempotent)."""
    root = root.resolve()
    try:
        if processes_in(root) and (root / "proc/self").exists():
            # -fast: running jobs are killed instead of waited for.
            cmd = _chroot_argv(root, ["condor_off", "-fast", "-master"], env=_root_env(), as_user=False)
            subprocess.run(cmd, capture_output=True, timeout=30)
        _kill_all(root, grace)
    finally:
        _unmount_all(root)


def _remove_tree(path: Path) -> None:
    """Delete a (partial or stale) chroot, never through a mount into the host."""
    if not path.exists():
        return
    _kill_all(path, 0)
    _unmount_all(path)
    shutil.rmtree(path)


# --- building the cached chroot ------------------------------------------------------------------


def cache_key() -> str:
    recipe = json.dumps([SETUP_VERSION, SUITE, MIRROR, PACKAGES, VENV_BUILD_PACKAGES, USER, UID, str(VENV)])
    return f"{SUITE}-v{SETUP_VERSION}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


def chroot_dir() -> Path:
    """The cache entry for the current recipe: ``root/`` (the chroot), ``built.json``, locks."""
    return CACHE_DIR / f"htcondor-{cache_key()}"


def why_unavailable() -> str | None:
    """Why no pool can be started on this machine, or None when one can (cheap checks only)."""
    if not sys.platform.startswith("linux"):
        return f"an HTCondor chroot pool needs Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return f"an HTCondor chroot pool needs root for chroot and mount (running as uid {os.geteuid()})"
    for tool in ("chroot", "mount", "umount"):
        try:
            _tool(tool)
        except PoolUnavailable as err:
            return str(err)
    if (chroot_dir() / BUILT).is_file():
        return None
    try:
        _tool("debootstrap")
    except PoolUnavailable:
        if shutil.which("apt-get") is None:
            return "no cached chroot, and neither debootstrap nor apt-get (to install it) is available"
    if not any(name in os.environ for name in PASSED_ENV):
        host = MIRROR.split("/")[2]
        try:
            socket.create_connection((host, 80), timeout=10).close()
        except OSError as err:
            return f"no cached chroot in {chroot_dir()}, and the Debian mirror {host} is unreachable: {err}"
    return None


def _ensure_debootstrap(log_file: Path) -> str:
    try:
        return _tool("debootstrap")
    except PoolUnavailable:
        pass
    log.info("installing debootstrap on the host: apt-get install -y debootstrap")
    apt = _tool("apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "debootstrap"]
    try:
        _run(install, timeout=600, what="apt-get install debootstrap", log_file=log_file, env=env)
    except PoolError:  # the package lists may be missing or stale on a fresh machine
        _run(
            [apt, "update"],
            timeout=600,
            what="apt-get update",
            log_file=log_file,
            env=env,
            error=PoolUnavailable,
        )
        _run(
            install,
            timeout=600,
            what="apt-get install debootstrap",
            log_file=log_file,
            env=env,
            error=PoolUnavailable,
        )
    return _tool("debootstrap")


def _copy_host_file(root: Path, relative: str) -> None:
    source = Path("/") / relative
    if source.is_file():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        shutil.copyfile(source, target)


def _build(base: Path) -> None:
    """Build the chroot in ``<base>.partial`` and rename it to ``base`` when complete."""
    partial = base.with_name(base.name + ".partial")
    _remove_tree(partial)
    _remove_tree(base)  # an entry without built.json is broken
    partial.mkdir(parents=True)
    log_file = partial / "build.log"
    root = partial / "root"
    steps: dict[str, float] = {}
    started = time.monotonic()

    def step(name: str) -> None:
        steps[name] = round(time.monotonic() - started - sum(steps.values()), 1)
        log.info("  %s: %.1f s", name, steps[name])

    log.info("building the HTCondor chroot in %s (log: %s)", partial, log_file)
    debootstrap = _ensure_debootstrap(log_file)
    step("debootstrap installed")
    _run(
        [debootstrap, "--variant=minbase", SUITE, str(root), MIRROR],
        timeout=1800,
        what=f"debootstrap {SUITE}",
        log_file=log_file,
        env={**os.environ, "PATH": SYSTEM_PATH, "LC_ALL": "C"},
        error=PoolUnavailable,
    )
    step("debootstrap")
    policy = root / "usr/sbin/policy-rc.d"  # never start services while installing
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    _copy_host_file(root, "etc/resolv.conf")
    _mount_system(root)
    try:

        def run(
            argv: list[str], what: str, timeout: float = 1800, error: type[PoolError] = PoolUnavailable
        ) -> None:
            _in_root(root, argv, timeout=timeout, what=what, log_file=log_file, error=error)

        run(
            ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
            "apt-get install in the chroot",
        )
        run(["apt-get", "clean"], "apt-get clean", 120, PoolError)
        step("apt-get install " + " ".join(PACKAGES))
        (root / str(CONFIG_FILE).lstrip("/")).write_text(CONDOR_SETTINGS)
        run(
            ["useradd", "--uid", str(UID), "--user-group", "--create-home", "--shell", "/bin/bash", USER],
            "useradd",
            60,
            PoolError,
        )
        _copy_host_file(root, CA_BUNDLE)  # pip inside reaches the index through the host's CAs
        run(["python3", "-m", "venv", str(VENV)], "python3 -m venv", 300, PoolError)
        run([f"{VENV}/bin/pip", "install", "--quiet", *VENV_BUILD_PACKAGES], "pip install in the venv")
        _link_bindings(root)
        step("venv")
    finally:
        _unmount_all(root)
    condor = _in_root(root, ["condor_version"], timeout=60, what="condor_version").stdout.splitlines()[0]
    info = {
        "key": cache_key(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": steps,
        "condor_version": condor,
    }
    (partial / BUILT).write_text(json.dumps(info, indent=2) + "\n")
    partial.rename(base)
    log.info("built %s in %.0f s (%s)", base, time.monotonic() - started, condor)


def _link_bindings(root: Path) -> None:
    """Make Debian's HTCondor bindings (built for the same condor) importable in the venv only."""
    dist = root / "usr/lib/python3/dist-packages"
    (site,) = (root / str(VENV).lstrip("/") / "lib").glob("python3*/site-packages")
    names = sorted(p.name for pattern in ("htcondor*", "classad*") for p in dist.glob(pattern))
    if "htcondor2" not in names:
        raise PoolError(f"the condor package installed no htcondor2 module in {dist}")
    for name in names:
        (site / name).symlink_to(f"/usr/lib/python3/dist-packages/{name}")


def _remove_stale_builds(keep: Path) -> None:
    for other in sorted(CACHE_DIR.glob("htcondor-*")):
        if other == keep or not other.is_dir():
            continue
        lock = _FileLock(other / "pool.lock")
        if (other / "pool.lock").exists() and not lock.try_acquire():
            continue  # a pool of another recipe is running right now
        try:
            log.info("removing the outdated chroot %s", other)
            _remove_tree(other)
        finally:
            lock.release()


def ensure_chroot(*, lock_timeout: float = 1800) -> Path:
    """The cached chroot for the current recipe, built first if needed; returns its root."""
    base = chroot_dir()
    root = base / "root"
    if (base / BUILT).is_file():
        log.info("using the cached chroot %s", root)
        return root
    reason = why_unavailable()
    if reason:
        raise PoolUnavailable(reason)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    lock = _FileLock(CACHE_DIR / "build.lock")
    lock.acquire(lock_timeout, "the HTCondor chroot build")
    try:
        if not (base / BUILT).is_file():  # another process may have built it meanwhile
            _build(base)
            _remove_stale_builds(keep=base)
    finally:
        lock.release()
    return root


# --- the running pool ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorkDir:
    """A directory owned by the pool user, seen at ``host`` outside and at ``inside`` in the chroot."""

    host: Path
    inside: PurePosixPath

    def write(self, name: str, text: str, *, executable: bool = False) -> Path:
        path = self.host / name
        path.write_text(text)
        path.chmod(0o755 if executable else 0o644)
        os.chown(path, UID, GID)
        return path

    def read(self, name: str) -> str:
        return (self.host / name).read_text()


class Pool:
    """A running pool (from :func:`start_pool`); stop it with :meth:`stop` or a ``with`` block."""

    def __init__(self, root: Path, project: Path, lock: _FileLock) -> None:
        self.root = root
        self.project = project
        self._lock = lock
        self._stopped = False

    def host_path(self, inside: str | PurePosixPath) -> Path:
        """Where a path inside the chroot lives on the host."""
        return self.root / str(inside).lstrip("/")

    def run_as_user(
        self,
        argv: Sequence[str],
        *,
        cwd: str | PurePosixPath | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = 600,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the chroot as the pool user, venv on PATH and CONDOR_CONFIG set.

        ``cwd`` is a path inside the chroot (default: the user's home); ``env`` adds variables to
        the clean environment.  The exit status is returned, not checked.
        """
        cmd = _chroot_argv(self.root, argv, env={**_user_env(), **(env or {})}, as_user=True, cwd=cwd or HOME)
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def run_as_root(self, argv: Sequence[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as root in the chroot (administration: condor_reconfig, condor_config_val)."""
        cmd = _chroot_argv(self.root, argv, env=_root_env(), as_user=False)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def make_workdir(self, name: str) -> WorkDir:
        """A fresh, empty directory for one test under :data:`WORK`, owned by the pool user."""
        inside = WORK / name
        host = self.host_path(inside)
        if host.exists():
            shutil.rmtree(host)
        host.mkdir(parents=True)
        for path in (self.host_path(WORK), host):
            os.chown(path, UID, GID)
        return WorkDir(host, inside)

    def versions(self) -> dict[str, str]:
        """HTCondor, the chroot's Python and the bindings the venv imports."""
        probe = (
            "import sys, htcondor2, classad2; "
            "print(sys.version.split()[0]); print(htcondor2.version()); print(htcondor2.__file__)"
        )
        out = self.run_as_user(["python", "-c", probe], timeout=60).stdout.splitlines()
        condor = self.run_as_user(["condor_version"], timeout=60).stdout.splitlines()
        return {
            "condor": condor[0] if condor else "?",
            "python": out[0] if out else "?",
            "htcondor2": out[1] if len(out) > 1 else "?",
            "bindings": out[2] if len(out) > 2 else "?",
        }

    def stop(self) -> None:
        """Stop condor, kill what is left in the chroot, unmount everything (idempotent)."""
        if self._stopped:
            return
        started = time.monotonic()
        try:
            shutdown(self.root)
        finally:
            self._stopped = True
            self._lock.release()
        log.info("pool stopped in %.1f s", time.monotonic() - started)

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _empty_dir(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _prepare_files(root: Path) -> None:
    """Per-start files: host name, DNS and CA bundle from the host, the port; empty condor state."""
    name = socket.gethostname()
    fqdn = socket.getfqdn()
    names = name if fqdn in (name, "localhost") else f"{fqdn} {name}"
    hosts = root / "etc/hosts"
    hosts.write_text(f"127.0.0.1\tlocalhost\n127.0.0.1\t{names}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    _copy_host_file(root, "etc/resolv.conf")
    _copy_host_file(root, CA_BUNDLE)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (root / str(PORT_FILE).lstrip("/")).write_text(f"COLLECTOR_HOST = 127.0.0.1:{port}\n")
    for relative in STATE_DIRS:
        _empty_dir(root / relative)
    work = root / str(WORK).lstrip("/")
    if work.exists():
        shutil.rmtree(work)


def _refresh_venv(root: Path, project: Path) -> None:
    """``pip install -e`` the bind-mounted project when its pyproject.toml changed."""
    key = hashlib.sha256((project / "pyproject.toml").read_bytes()).hexdigest()
    stamp = root / str(VENV).lstrip("/") / ".skybatch-project"
    if stamp.is_file() and stamp.read_text().strip() == key:
        return
    started = time.monotonic()
    log.info("installing the project into the chroot venv: pip install -e %s", PROJECT_MOUNT)
    _in_root(
        root,
        [f"{VENV}/bin/pip", "install", "--quiet", "--no-build-isolation", "-e", str(PROJECT_MOUNT)],
        timeout=1800,
        what="pip install -e (the project, in the chroot venv)",
        error=PoolUnavailable,
    )
    stamp.write_text(key + "\n")
    log.info("  installed in %.1f s", time.monotonic() - started)


def _log_tails(root: Path) -> str:
    parts = []
    for name in ("MasterLog", "StartLog", "SchedLog", "CollectorLog"):
        path = root / "var/log/condor" / name
        if path.is_file():
            parts.append(f"--- {name} ---\n{_tail(path.read_text(errors='replace'), 12)}")
    return "\n".join(parts) or "(no condor logs)"


def _wait_for_pool(root: Path, timeout: float) -> None:
    """Until condor_status lists a slot and the schedd (or raise with the daemons' logs)."""
    deadline = time.monotonic() + timeout
    cmd = _chroot_argv(root, ["condor_status", "-any", "-af", "MyType"], env=_root_env(), as_user=False)
    seen: set[str] = set()
    while time.monotonic() < deadline:
        if not processes_in(root):
            raise PoolError(f"condor_master exited during start-up\n{_log_tails(root)}")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        seen = set(done.stdout.split())
        if {"Machine", "Scheduler"} <= seen:
            return
        time.sleep(0.25)
    raise PoolError(
        f"no slot and schedd advertised within {timeout:.0f} s"
        f" (condor_status saw {sorted(seen) or 'nothing'})\n{_log_tails(root)}"
    )


def start_pool(
    root: Path,
    *,
    project: Path = REPO,
    slot_timeout: float = 60.0,
    lock_timeout: float = 600.0,
) -> Pool:
    """Mount, refresh the venv, start condor_master in ``root`` and wait for a slot."""
    root = root.resolve()
    project = project.resolve()
    if not (root.parent / BUILT).is_file():
        raise PoolError(f"{root} is not a complete chroot; call ensure_chroot() first")
    lock = _FileLock(root.parent / "pool.lock")
    lock.acquire(lock_timeout, f"the HTCondor pool in {root}")
    started = time.monotonic()
    try:
        if processes_in(root) or mounts_under(root):
            log.warning("stopping a pool left behind in %s by an earlier run", root)
            shutdown(root, grace=5)
        _prepare_files(root)
        # Written at every start (not part of the cached build), so tuning it never costs a rebuild.
        (root / str(CONFIG_FILE).lstrip("/")).write_text(CONDOR_SETTINGS)
        _mount_system(root)
        (root / str(PROJECT_MOUNT).lstrip("/")).mkdir(exist_ok=True)
        _mount_private(root / str(PROJECT_MOUNT).lstrip("/"), "--bind", str(project))
        _refresh_venv(root, project)
        master = _chroot_argv(root, ["/usr/sbin/condor_master"], env=_root_env(), as_user=False)
        with (root / "var/log/condor/master.stdout").open("w") as out:
            # condor_master daemonizes; its own session keeps terminal signals off the pool.
            code = subprocess.run(
                master,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                timeout=60,
            ).returncode
        if code:
            raise PoolError(f"condor_master exited with {code}\n{_log_tails(root)}")
        _wait_for_pool(root, slot_timeout)
    except BaseException:
        try:
            shutdown(root, grace=5)
        finally:
            lock.release()
        raise
    log.info("pool started in %.1f s (%s)", time.monotonic() - started, root)
    return Pool(root, project, lock)


# --- command line --------------------------------------------------------------------------------


def _status(root: Path) -> int:
    base = root.parent
    print(f"cache entry: {base}")
    if not (base / BUILT).is_file():
        print("not built (run: python tests/htcondor/pool.py prepare)")
        return 1
    print((base / BUILT).read_text().strip())
    pids = processes_in(root)
    mounts = mounts_under(root)
    print(f"processes in the chroot: {len(pids)}; mounts below it: {len(mounts)}")
    for target in mounts:
        print(f"  {target}")
    if pids and (root / "proc/self").exists():
        done = subprocess.run(
            _chroot_argv(root, ["condor_status"], env=_user_env(), as_user=True),
            capture_output=True,
            text=True,
        )
        print(done.stdout + done.stderr)
    return 0


def _shell(root: Path, as_root: bool) -> int:
    pool = None
    if not processes_in(root):
        pool = start_pool(root)
    env = _root_env() if as_root else _user_env()
    env["TERM"] = os.environ.get("TERM", "xterm")
    env["PS1"] = r"(htcondor-chroot) \u:\w\$ "
    cwd = None if as_root else HOME
    print(f"shell in {root}; `exit` to leave{' (this stops the pool)' if pool else ''}")
    try:
        return subprocess.run(
            _chroot_argv(root, ["/bin/bash", "--norc"], env=env, as_user=not as_root, cwd=cwd)
        ).returncode
    finally:
        if pool is not None:
            pool.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tests/htcondor/pool.py",
        description="The one-machine HTCondor test pool (a cached Debian 13 chroot with minicondor).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="build or reuse the chroot, then start and stop the pool once")
    commands.add_parser("start", help="start the pool and leave it running (until `stop`)")
    commands.add_parser("stop", help="stop a running or left-behind pool and unmount everything")
    commands.add_parser("status", help="show the cache entry, mounts, processes and condor_status")
    shell = commands.add_parser(
        "shell", help="a shell in the chroot as the pool user (starts the pool if needed)"
    )
    shell.add_argument("--root", action="store_true", help="a root shell instead")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "status":
            return _status(chroot_dir() / "root")
        if args.command == "stop":
            shutdown(chroot_dir() / "root")
            print("stopped; no mounts left below", chroot_dir())
            return 0
        reason = why_unavailable()
        if reason:
            print(f"no HTCondor pool here: {reason}", file=sys.stderr)
            return 2
        root = ensure_chroot()
        if args.command == "prepare":
            with start_pool(root) as pool:
                for name, value in pool.versions().items():
                    print(f"{name}: {value}")
            return 0
        if args.command == "start":
            start_pool(root)  # its lock ends with this process; the pool runs on
            print(f"pool running in {root}; stop it with: python tests/htcondor/pool.py stop")
            return 0
        return _shell(root, args.root)
    except PoolError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
