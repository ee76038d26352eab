"""Who may see and do what, and the credentials that say who is calling.

* :mod:`~geomap.auth.permissions`: roles, the permissions they grant, the caller
  (:class:`Principal`) and the check of a call against them; the open local reads'
  loopback rule.
* :mod:`~geomap.auth.keys`, :mod:`~geomap.auth.sessions`, :mod:`~geomap.auth.embed`: the
  credential stores (API keys, sign-in sessions, embed tokens), plain functions over a
  connection.

The request hook that reads a credential from a request and checks it before the view
is ``geomap.web.access``. The names used by the CLI and the tests are gathered here.
"""

from geomap.auth.embed import (
    create_embed_token,
    embed_principal,
    list_embed_tokens,
    revoke,
    secret_key,
)
from geomap.auth.keys import create_key, key_principal, list_keys, revoke_key
from geomap.auth.permissions import (
    BLUEPRINT_DEFAULTS,
    KEY_ROLES,
    PERMISSIONS,
    ROLES,
    Principal,
    check_bind,
    principal,
)
from geomap.auth.sessions import create_session, end_session, session_principal

__all__ = [
    "BLUEPRINT_DEFAULTS",
    "KEY_ROLES",
    "PERMISSIONS",
    "ROLES",
    "Principal",
    "check_bind",
    "create_embed_token",
    "create_key",
    "create_session",
    "embed_principal",
    "end_session",
    "key_principal",
    "list_embed_tokens",
    "list_keys",
    "principal",
    "revoke",
    "revoke_key",
    "secret_key",
    "session_principal",
]
