"""Are the database roles' grants what migration ``0013_roles`` gives, no less and no more?

The service's role must read and write rows and append to the audit, and must not be able
to rewrite it: no superuser, no ownership of the schema (an owner may disable triggers or
drop them), no UPDATE/DELETE/TRUNCATE on ``audit_log`` or ``events``, no right to set
``session_replication_role`` (which turns triggers off). The read-only role must only
read. :func:`check` compares a role's privileges in the connected database with that and
names every difference; ``geomap db check`` (and ``geomap db up``) print them.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: Tables the service only appends to and reads.
APPEND_ONLY = ("audit_log", "events")
#: The function the service calls to make the position history's partitions.
PARTITION_MAKER = "team_positions_ensure(date, date)"
#: Attributes no role of the service should have, and what each allows.
_ATTRIBUTES = {
    "rolsuper": "is a superuser (bypasses every grant: can disable the audit's triggers)",
    "rolcreaterole": "may create roles (and grant itself the owner's membership)",
    "rolcreatedb": "may create databases",
    "rolbypassrls": "bypasses row-level security",
    "rolreplication": "may start replication (reads every row)",
}
#: Built-in roles that reach outside the database.
_POWERFUL_ROLES = ("pg_write_server_files", "pg_read_server_files", "pg_execute_server_program")
_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@dataclass(frozen=True)
class Finding:
    """One difference between a role's privileges and what it should have.

    Attributes
    ----------
    kind : str
        ``"missing"`` (the service would fail) or ``"excessive"`` (more than it needs).
    what : str
        The privilege or attribute, naming the objects.
    """

    kind: str
    what: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.what}"


ROLE_SQL = sa.text(
    "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
    "FROM pg_roles WHERE rolname = coalesce(CAST(:role AS text), current_user)"
)

MEMBERSHIP_SQL = sa.text(
    "SELECT r.rolname FROM pg_roles r "
    "WHERE r.rolname = ANY(CAST(:powerful AS text[])) AND pg_has_role(:role, r.oid, 'MEMBER') "
    "ORDER BY r.rolname"
)

# The schema's tables and views (not the extensions', not Alembic's), with the role's
# privileges on each and whether it owns them (directly or through a membership).
TABLES_SQL = sa.text(
    "SELECT c.relname AS name, n.nspname AS schema, c.relkind AS kind, "
    "       pg_has_role(:role, c.relowner, 'MEMBER') AS owned, "
    + ", ".join(
        f"has_table_privilege(:role, c.oid, '{p}') AS {p.lower()}" for p in _TABLE_PRIVILEGES
    )
    + " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname IN ('public', 'geomap_partitions') AND c.relkind IN ('r', 'p', 'v', 'm') "
    "  AND c.relname <> 'alembic_version' "
    "  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "                  AND d.objid = c.oid AND d.deptype = 'e') "
    "ORDER BY n.nspname, c.relname"
)

SEQUENCES_SQL = sa.text(
    "SELECT c.relname AS name, has_sequence_privilege(:role, c.oid, 'USAGE') AS usage "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind = 'S' "
    "  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "                  AND d.objid = c.oid AND d.deptype = 'e') "
    "ORDER BY c.relname"
)

SCHEMAS_SQL = sa.text(
    "SELECT n.nspname AS name, has_schema_privilege(:role, n.oid, 'USAGE') AS usage, "
    "       has_schema_privilege(:role, n.oid, 'CREATE') AS create, "
    "       pg_has_role(:role, n.nspowner, 'MEMBER') AND n.nspname <> 'public' AS owned "
    "FROM pg_namespace n WHERE n.nspname IN ('public', 'geomap_partitions') ORDER BY 1"
)

DATABASE_SQL = sa.text(
    "SELECT has_database_privilege(:role, current_database(), 'CREATE') AS create, "
    "       pg_has_role(:role, d.datdba, 'MEMBER') AS owned "
    "FROM pg_database d WHERE d.datname = current_database()"
)

FUNCTION_SQL = sa.text(
    "SELECT has_function_privilege(:role, p.oid, 'EXECUTE') AS execute, "
    "       p.prosecdef AS definer, r.rolsuper AS owner_is_superuser "
    "FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner "
    "WHERE p.oid = to_regprocedure(:function)"
)

REPLICATION_ROLE_SQL = sa.text(
    "SELECT has_parameter_privilege(:role, 'session_replication_role', 'SET')"
)


def _names(items: list[str], most: int = 8) -> str:
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown} and {len(items) - most} more"


def check(conn: Connection, role: str | None = None, *, read_only: bool = False) -> list[Finding]:
    """What ``role`` lacks or has too much of, in the connected database.

    Parameters
    ----------
    conn : Connection
        A connection to the migrated database (any role may read the catalogs).
    role : str, optional
        The role to judge; the connection's own (``current_user``) by default, which is
        how ``geomap db check`` judges the service's role.
    read_only : bool, default False
        Judge it as the read-only role (SELECT on the tables, nothing else) rather than
        as the service's.

    Returns
    -------
    list of Finding
        Empty when the grants are exactly right.
    """
    found: list[Finding] = []
    attributes = conn.execute(ROLE_SQL, {"role": role}).mappings().first()
    if attributes is None:
        return [Finding("missing", f"role {role} does not exist")]
    name = attributes["rolname"]
    params = {"role": name}
    for column, meaning in _ATTRIBUTES.items():
        if attributes[column]:
            found.append(Finding("excessive", f"{name} {meaning}"))
    if attributes["rolsuper"]:
        return found  # every privilege below follows; naming them adds nothing
    powerful = conn.execute(MEMBERSHIP_SQL, {**params, "powerful": list(_POWERFUL_ROLES)})
    for (member_of,) in powerful:
        found.append(Finding("excessive", f"{name} is a member of {member_of}"))
    found += _database_findings(conn, name)
    found += _table_findings(conn, name, read_only)
    found += _sequence_findings(conn, name, read_only)
    function = conn.execute(FUNCTION_SQL, {**params, "function": PARTITION_MAKER}).first()
    if function is not None and not read_only:
        if not function.execute:
            found.append(Finding("missing", f"EXECUTE on function {PARTITION_MAKER}"))
        if not function.definer:
            found.append(Finding(
                "missing", f"{PARTITION_MAKER} is not SECURITY DEFINER: the service "
                "cannot make the position history's partitions (migration 0013_roles)",
            ))  # fmt: skip
        elif function.owner_is_superuser:
            found.append(Finding(
                "excessive", f"{PARTITION_MAKER} runs as a superuser (its owner): give it "
                "to the owner role",
            ))  # fmt: skip
    # Parameter privileges exist from PostgreSQL 15; before, only a superuser may set it.
    version = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
    if version >= 150000 and conn.execute(REPLICATION_ROLE_SQL, params).scalar_one():
        found.append(Finding(
            "excessive", f"{name} may SET session_replication_role (turns the audit's "
            "triggers off)",
        ))  # fmt: skip
    return found


def _database_findings(conn: Connection, name: str) -> list[Finding]:
    found = []
    database = conn.execute(DATABASE_SQL, {"role": name}).mappings().one()
    if database["owned"]:
        found.append(Finding("excessive", f"{name} owns the database"))
    elif database["create"]:
        found.append(Finding("excessive", f"{name} may CREATE schemas in the database"))
    for schema in conn.execute(SCHEMAS_SQL, {"role": name}).mappings():
        if not schema["usage"]:
            found.append(Finding("missing", f"USAGE on schema {schema['name']}"))
        if schema["owned"]:
            found.append(Finding("excessive", f"{name} owns schema {schema['name']}"))
        elif schema["create"]:
            found.append(Finding("excessive", f"CREATE on schema {schema['name']}"))
    return found


def _table_findings(conn: Connection, name: str, read_only: bool) -> list[Finding]:
    missing: dict[str, list[str]] = {}
    excessive: dict[str, list[str]] = {}
    owned: list[str] = []
    for table in conn.execute(TABLES_SQL, {"role": name}).mappings():
        label = table["name"]
        if table["schema"] != "public":
            label = f"{table['schema']}.{label}"
        if table["owned"]:
            owned.append(label)
            continue
        if read_only or table["kind"] in ("v", "m"):
            wanted = {"SELECT"}
        elif table["name"] in APPEND_ONLY:
            wanted = {"SELECT", "INSERT"}
        else:
            wanted = {"SELECT", "INSERT", "UPDATE", "DELETE"}
        for privilege in _TABLE_PRIVILEGES:
            held = table[privilege.lower()]
            if privilege in wanted and not held:
                missing.setdefault(privilege, []).append(label)
            elif privilege not in wanted and held:
                excessive.setdefault(privilege, []).append(label)
    found = []
    if owned:
        # Ownership first, the audit named first: an owner can ALTER, DISABLE TRIGGER, DROP.
        owned.sort(key=lambda label: (label not in APPEND_ONLY, label))
        found.append(Finding(
            "excessive", f"{name} owns {_names(owned)} (an owner may disable or drop the "
            "audit's triggers): the tables belong to the owner role",
        ))  # fmt: skip
    for privilege, tables in missing.items():
        found.append(Finding("missing", f"{privilege} on {_names(tables)}"))
    for privilege, tables in excessive.items():
        found.append(Finding("excessive", f"{privilege} on {_names(tables)}"))
    return found


def _sequence_findings(conn: Connection, name: str, read_only: bool) -> list[Finding]:
    missing, excessive = [], []
    for sequence in conn.execute(SEQUENCES_SQL, {"role": name}).mappings():
        if sequence["usage"] and read_only:
            excessive.append(sequence["name"])
        elif not sequence["usage"] and not read_only:
            missing.append(sequence["name"])
    found = []
    if missing:
        found.append(Finding("missing", f"USAGE on sequence {_names(missing)}"))
    if excessive:
        found.append(Finding("excessive", f"USAGE on sequence {_names(excessive)}"))
    return found


def report(conn: Connection, read_role: str = "geomap_read") -> tuple[list[str], bool]:
    """The lines ``geomap db check`` prints, and whether every role is as it should be.

    Parameters
    ----------
    conn : Connection
        The service's own connection (``GEOMAP_DATABASE_URL``): its role is judged as the
        service's; ``read_role``, when it exists, as the read-only role.
    read_role : str, default "geomap_read"
        The read-only role's name.
    """
    own = conn.execute(sa.text("SELECT current_user")).scalar_one()
    lines, good = [], True
    for role, read_only, title in (
        (None, False, f"{own} (the service's role)"),
        (read_role, True, f"{read_role} (the read-only role)"),
    ):
        if read_only and (own == read_role or not _exists(conn, read_role)):
            continue  # no read nodes set up: nothing to judge
        findings = check(conn, role, read_only=read_only)
        good = good and not findings
        if not findings:
            lines.append(f"{title}: grants as they should be")
            continue
        lines.append(f"{title}: {len(findings)} problem(s)")
        lines += [f"  {finding}" for finding in findings]
    if not good:
        lines.append('grant or revoke as README "Database roles" says (or migrate as the owner)')
    return lines, good


def _exists(conn: Connection, role: str) -> bool:
    return conn.execute(ROLE_SQL, {"role": role}).first() is not None
