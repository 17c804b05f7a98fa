"""The asched dashboard: live state, the 24 h forecast and the audit trail in a browser.

Built on Starlette and served by uvicorn (the ``dashboard`` extra): a small, well-kept
ASGI pair with no template or build step, that mounts into any ASGI app users already run.
The page is plain HTML, CSS and JavaScript shipped in this package; nothing loads from
the internet.  See :func:`create_app` and :mod:`asched.dashboard.serve`.
"""

from __future__ import annotations

from asched.dashboard.app import create_app

__all__ = ["create_app"]
