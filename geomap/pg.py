"""The embedded PostGIS: a private PostgreSQL cluster that the project owns.

The cluster lives in ``<state_dir>/pg`` and listens only on a Unix socket in that folder
(``listen_addresses=''``), so it cannot clash with any other server. PostgreSQL refuses to
run as root: when we are root, every server command runs as the ``postgres`` OS user
(which Debian's postgresql-common creates), and the folder is handed to that user.

Three roles share the work (least privilege, so a bug or an injected statement in the
service cannot rewrite the audit): :data:`OWNER` owns the schema and runs the migrations
and the seed, :data:`APP` is the service's (reads and writes rows, appends to the audit
and the events, owns nothing, is no superuser), :data:`READ` only reads (read nodes,
reports). The grants themselves are migration ``0013_roles``'s; :meth:`Cluster.up`
creates the roles, gives the database to the owner and creates the extensions as the
superuser (PostGIS and pgRouting need one), so the owner needs no more than ownership.
Every role signs in over the socket with ``trust``, as the cluster is set up by initdb.

Typical use::

    cluster = Cluster(settings.state_dir, port=settings.pg_port)
    cluster.up()              # initdb once, start, roles, database, extensions; idempotent
    url = cluster.url()       # the owner's: postgresql+psycopg://geomap_owner@/geomap?host=...
    app = cluster.url(role=APP)  # the service's
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
#: Owns the schema objects; migrations and the seed connect as it.
OWNER = "geomap_owner"
#: The service's role: rows only, INSERT and SELECT on the audit and the events.
APP = "geomap_app"
#: SELECT only: read nodes and reports.
READ = "geomap_read"
ROLES = (OWNER, APP, READ)
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
    url: str  # the service's (as APP)

    def __str__(self) -> str:
        state = "running" if self.running else ("stopped" if self.initialised else "not created")
        return (
            f"{state}: data {self.data_dir}, socket {self.socket_dir}, url {self.url} "
            f"(migrations as {OWNER})"
        )


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

    def _psql(self, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        """Run ``sql`` as the superuser in ``database``; stop at the first error."""
        return self._run(
            [
                str(find_bindir() / "psql"),
                "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER,
                "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql,
            ]
        )  # fmt: skip

    def create_roles(self) -> None:
        """Create the owner, application and read-only roles if missing (idempotent).

        None is a superuser or may create roles or databases; the application role
        does not inherit (it is a member of nothing anyway, and stays so).
        """
        self._psql("postgres", _ROLES_SQL)

    def create_database(self, name: str = DATABASE) -> None:
        """Create a database owned by :data:`OWNER` if missing, and hand it over.

        The superuser creates PostGIS and pgRouting in it (creating them needs one),
        then gives the database, and any schema object still owned by the superuser (a
        database migrated before the roles existed), to the owner role.
        """
        _check_name(name)
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists.stdout.strip() != "1":
            self._psql("postgres", f'CREATE DATABASE "{name}" OWNER {OWNER}')
        self._psql("postgres", f'ALTER DATABASE "{name}" OWNER TO {OWNER}')
        self._psql(name, _HAND_OVER_SQL)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists (used by tests)."""
        _check_name(name)
        self._psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def up(self, database: str = DATABASE) -> None:
        """Initialise (once), start (if stopped), create the roles and ``database``: idempotent."""
        self.init()
        self.start()
        self.create_roles()
        self.create_database(database)

    def destroy(self) -> None:
        """Stop the server and delete the cluster's folders (tests only)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def url(self, database: str = DATABASE, role: str = OWNER) -> str:
        """SQLAlchemy URL of ``database`` in this cluster as ``role``, through the socket.

        Parameters
        ----------
        database : str, default "geomap"
            The database's name.
        role : str, default :data:`OWNER`
            Who signs in: :data:`OWNER` (migrations, seed), :data:`APP` (the service),
            :data:`READ`, or :data:`SUPERUSER` (creating and dropping databases).
        """
        return f"postgresql+psycopg://{role}@/{database}?host={self.socket_dir}&port={self.port}"

    def status(self) -> Status:
        """Whether the cluster exists and runs, and where."""
        return Status(
            initialised=self.initialised,
            running=self.running(),
            data_dir=self.data_dir,
            socket_dir=self.socket_dir,
            url=self.url(role=APP),
        )

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self.log_file})"


def _check_name(name: str) -> None:
    # Database names are ours and go into SQL text: letters, digits, _ only.
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ConfigError(f"bad database name {name!r}")


_ROLES_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER}') THEN
        CREATE ROLE {OWNER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP}') THEN
        CREATE ROLE {APP} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READ}') THEN
        CREATE ROLE {READ} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT;
    END IF;
END $$;
"""

# Run by the superuser in each database: the extensions (they need a superuser), then
# every schema object not belonging to an extension and not yet the owner's goes to the
# owner. Tables first: a sequence owned by a column follows its table.
_HAND_OVER_SQL = f"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pgrouting;
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT n.nspname FROM pg_namespace n
        WHERE n.nspname = 'geomap_partitions' AND n.nspowner <> '{OWNER}'::regrole
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO {OWNER}', item.nspname);
    END LOOP;
    FOR item IN
        SELECT c.oid::regclass AS name,
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                              WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'geomap_partitions')
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND c.relowner <> '{OWNER}'::regrole
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY c.relkind = 'S'
    LOOP
        -- A sequence owned by a column has followed its table already.
        IF (SELECT relowner FROM pg_class WHERE oid = item.name) <> '{OWNER}'::regrole THEN
            EXECUTE format('ALTER %s %s OWNER TO {OWNER}', item.kind, item.name);
        END IF;
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS name
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.proowner <> '{OWNER}'::regrole
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {OWNER}', item.name);
    END LOOP;
END $$;
"""
