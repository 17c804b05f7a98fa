"""Who may read and who may act.

* With a ``token``, every ``/api`` request must carry it in the
  ``X-Asched-Token`` header (or ``Authorization: Bearer``); the page itself
  holds no data and asks for the token.
* Without one, reads are open (the server binds 127.0.0.1 by default) and the
  actions need a random per-process token that the page carries; another site
  cannot read the page (same-origin policy), so it cannot learn it.

Actions are CSRF-safe: they are POSTs that need a custom header, which a
browser never sends cross-origin without a CORS preflight (the dashboard
grants none), and a request whose ``Origin`` is not the dashboard's own host
is refused outright.  A header, unlike a cookie, is never attached by the
browser on its own.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

from asched.dashboard.sources import Actor

TOKEN_HEADER = "x-asched-token"
ACTOR_HEADER = "x-asched-actor"
_MAX_ACTOR = 64


class Forbidden(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Guard:
    def __init__(self, token: str | None) -> None:
        self.token = token or None
        #: What the page sends for actions when no token was configured.
        self.page_token = None if self.token else secrets.token_urlsafe(24)

    def check_read(self, request: Request) -> None:
        if self.token is not None and not self._carries(request, self.token):
            raise Forbidden(401, "this dashboard needs its token in the X-Asched-Token header")

    def check_action(self, request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise Forbidden(403, "cross-origin action refused")
        expected = self.token or self.page_token
        assert expected is not None
        if not self._carries(request, expected):
            raise Forbidden(401, "actions need the token in the X-Asched-Token header")

    @staticmethod
    def _carries(request: Request, expected: str) -> bool:
        given = request.headers.get(TOKEN_HEADER)
        if given is None:
            auth = request.headers.get("authorization", "")
            scheme, _, value = auth.partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else None
        return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def actor_of(request: Request) -> Actor:
    """The operator (an optional ``X-Asched-Actor`` header, printable, shortened)
    and the client address."""
    raw = request.headers.get(ACTOR_HEADER, "")
    name = "".join(ch for ch in raw if ch.isprintable())[:_MAX_ACTOR].strip() or None
    client = request.client.host if request.client is not None else None
    return Actor(name, client)
