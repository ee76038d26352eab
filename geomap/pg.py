"""The embedded PostGIS: a private PostgreSQL cluster that the project owns.

The cluster lives in ``<state_dir>/pg`` and listens only on a Unix socket in that folder
(``listen_addresses=''``), so it cannot clash with any other server. PostgreSQL refuses to
run as root: when we are root, every server command runs as the ``postgres`` OS user
(which Debian's postgresql-common creates), and the folder is handed to that user.

Typical use::

    cluster = Cluster(settings.state_dir, port=settings.pg_port)
    cluster.up()            # initdb once, start, create the database; idempotent
    url = cluster.url()     # postgresql+psycopg://postgres@/geomap?host=<socket dir>&port=...
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from geomap.errors import ConfigError

DATABASE = "geomap"
SUPERUSER = "postgres"
_SOCKET_PATH_MAX = 100  # the kernel allows 107 bytes, minus ".s.PGSQL.<port>"
_INSTALL_HINT = (
    "apt-get install --no-install-recommends postgresql-15-postgis-3 postgresql-15-pgrouting"
)


def find_bindir() -> Path:
    """The newest PostgreSQL server binaries on this machine that have PostGIS beside them.

    Raises
    ------
    ConfigError
        When no PostgreSQL server with PostGIS and pgRouting is installed; the message says
        the command that installs them.
    """
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    for postgres in candidates:
        version = postgres.parent.parent.name
        ext = Path("/usr/share/postgresql") / version / "extension"
        if (ext / "postgis.control").exists() and (ext / "pgrouting.control").exists():
            return postgres.parent
    found = ", ".join(p.parent.parent.name for p in candidates) or "none"
    raise ConfigError(
        "no PostgreSQL server with PostGIS and pgRouting is installed "
        f"(PostgreSQL versions found: {found}). Run `make deps`, or as root: {_INSTALL_HINT}"
    )


@dataclass
class Status:
    """What :meth:`Cluster.status` reports."""

    initialised: bool
    running: bool
    data_dir: Path
    socket_dir: Path
    url: str

    def __str__(self) -> str:
        state = "running" if self.running else ("stopped" if self.initialised else "not created")
        return f"{state}: data {self.data_dir}, socket {self.socket_dir}, url {self.url}"


class Cluster:
    """A PostgreSQL cluster in a folder of ours, reached through a Unix socket.

    Parameters
    ----------
    state_dir : Path
        The project's state folder; the cluster lives in ``state_dir / "pg"``.
    port : int
        Names the socket file (``.s.PGSQL.<port>``); no TCP port is opened.
    throwaway : bool
        Turn off fsync and synchronous commit. Only for test clusters whose data may be lost.
    """

    def __init__(self, state_dir: Path, port: int = 5432, *, throwaway: bool = False):
        self.root = Path(state_dir).resolve() / "pg"
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.port = port
        self.throwaway = throwaway
        self.socket_dir = self._socket_dir()

    # -- paths and users ---------------------------------------------------------------
    def _socket_dir(self) -> Path:
        wanted = self.root / "run"
        if len(str(wanted)) <= _SOCKET_PATH_MAX:
            return wanted
        # Deep checkouts exceed the socket path limit: use a short folder named after ours.
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"geomap-{digest}"

    @property
    def _as_other_user(self) -> bool:
        return os.geteuid() == 0

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._as_other_user:
            args = ["runuser", "-u", SUPERUSER, "--", *args]
        proc = subprocess.run(args, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise ConfigError(
                f"`{' '.join(args)}` failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    def _prepare_folders(self) -> None:
        for folder in (self.root, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if not self._as_other_user:
            return
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise ConfigError(
                f"running as root, but there is no `{SUPERUSER}` user to run PostgreSQL as "
                f"(PostgreSQL refuses to run as root). Install postgresql-common: {_INSTALL_HINT}"
            ) from None
        for folder in (self.root, self.socket_dir):
            os.chown(folder, owner.pw_uid, owner.pw_gid)
            os.chmod(folder, 0o700)
        # The postgres user must be able to enter every parent folder (a checkout under
        # /root, mode 0700, is the usual trap): check it before initdb fails obscurely.
        if self._run(["test", "-w", str(self.root)], check=False).returncode != 0:
            blocked = next(
                (p for p in reversed(self.root.parents) if not os.stat(p).st_mode & 0o001), None
            )
            raise ConfigError(
                f"the `{SUPERUSER}` user cannot enter {self.root} "
                f"(blocked at {blocked or 'a parent folder'}). Either `chmod o+x` that folder, "
                "or set GEOMAP_STATE_DIR to a folder it can reach, e.g. /var/tmp/geomap."
            )

    # -- life cycle --------------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        """Whether the server of this data folder is up."""
        if not self.initialised:
            return False
        bindir = find_bindir()
        proc = self._run([str(bindir / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False)
        return proc.returncode == 0

    def init(self) -> None:
        """Create the cluster (once): initdb with UTF-8, trust on the local socket only."""
        if self.initialised:
            return
        self._prepare_folders()
        bindir = find_bindir()
        self._run(
            [
                str(bindir / "initdb"),
                "-D", str(self.data_dir),
                "-U", SUPERUSER,
                "--auth-local=trust",
                "--auth-host=reject",
                "-E", "UTF8",
                "--locale=C.UTF-8",
            ]
        )  # fmt: skip

    def start(self) -> None:
        """Start the server if it is not running; wait until it accepts connections."""
        if self.running():
            return
        self._prepare_folders()
        options = [
            "-c listen_addresses=''",
            f"-c unix_socket_directories='{self.socket_dir}'",
            f"-p {self.port}",
        ]
        if self.throwaway:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        proc = self._run(
            [
                str(find_bindir() / "pg_ctl"),
                "start", "-w", "-t", "60",
                "-D", str(self.data_dir),
                "-l", str(self.log_file),
                "-o", " ".join(options),
            ],
            check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            tail = self._log_tail()
            raise ConfigError(f"the embedded PostgreSQL did not start; its log says:\n{tail}")

    def stop(self) -> None:
        """Stop the server (fast shutdown); nothing to do when it is not running."""
        if self.running():
            self._run(
                [str(find_bindir() / "pg_ctl"), "stop", "-m", "fast", "-D", str(self.data_dir)]
            )

    def create_database(self, name: str = DATABASE) -> None:
        """Create a database if it is missing (names are ours: letters, digits, _)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ConfigError(f"bad database name {name!r}")
        psql = [
            str(find_bindir() / "psql"),
            "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER,
            "-d", "postgres", "-tAc",
        ]  # fmt: skip
        exists = self._run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"])
        if exists.stdout.strip() != "1":
            self._run([*psql, f'CREATE DATABASE "{name}"'])

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists (used by tests)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ConfigError(f"bad database name {name!r}")
        self._run(
            [
                str(find_bindir() / "psql"),
                "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER,
                "-d", "postgres", "-tAc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            ]
        )  # fmt: skip

    def up(self, database: str = DATABASE) -> None:
        """Initialise (once), start (if stopped) and create ``database``: idempotent."""
        self.init()
        self.start()
        self.create_database(database)

    def destroy(self) -> None:
        """Stop the server and delete the cluster's folders (tests only)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def url(self, database: str = DATABASE) -> str:
        """SQLAlchemy URL of ``database`` in this cluster, through the socket."""
        return (
            f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"
        )

    def status(self) -> Status:
        """Whether the cluster exists and runs, and where."""
        return Status(
            initialised=self.initialised,
            running=self.running(),
            data_dir=self.data_dir,
            socket_dir=self.socket_dir,
            url=self.url(),
        )

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self.log_file})"
