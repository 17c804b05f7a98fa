"""Built-in notifiers: :class:`LoggingNotifier` and :class:`WebhookNotifier`
(the latter needs the ``notify`` extra: ``pip install 'asched[notify]'``)."""

from __future__ import annotations

from asched.notifiers.log import LoggingNotifier
from asched.notifiers.webhook import WebhookNotifier

__all__ = ["LoggingNotifier", "WebhookNotifier"]
