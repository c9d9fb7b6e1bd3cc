"""Announcing problems: the ``Notice`` the engine sends and the webhook that carries it
(Slack-compatible JSON: ``{"text": ...}``, which Slack, Mattermost, Rocket.Chat and
Teams' incoming-webhook bridges all take). SNS is the AWS store's (``providers.aws``).

A notice holds policy names, short keys, target addresses and redacted messages; never a
key. The webhook URL is a credential: it is a ``Secret`` and never appears in an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bridge.errors import BridgeError
from bridge.secrets import Secret, redact

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy.

    Attributes:
        id: Stable while the problem lasts (``overdue:<rotation>``, ``blocked:<target>``).
        kind: ``overdue``, ``failed``, ``blocked``, ``expiring`` or ``no_key``.
        text: For people.
        digest: Changes when the problem does (a new error), not when time passes.
    """

    id: str
    kind: str
    text: str
    digest: str


@dataclass(frozen=True)
class Notice:
    policy: str
    opened: tuple[Problem, ...] = ()
    resolved: tuple[str, ...] = ()  # ids of problems gone since the last notice
    repeated: tuple[Problem, ...] = field(default=())

    def text(self) -> str:
        lines = [f"langsmith-bridge · policy {self.policy}"]
        lines += [f"• {p.kind}: {p.text}" for p in self.opened]
        lines += [f"• still {p.kind}: {p.text}" for p in self.repeated]
        lines += [f"• resolved: {problem}" for problem in self.resolved]
        return redact("\n".join(lines))


class NotifyError(BridgeError):
    """A notice could not be delivered (it is sent again at the next run)."""

    retryable = True


class Notifier(Protocol):
    name: str

    def send(self, notice: Notice) -> None:
        """Deliver ``notice``. Raises ``NotifyError``."""
        ...


class WebhookNotifier:
    """POSTs ``{"text": ...}`` to a Slack-compatible incoming webhook."""

    name = "webhook"

    def __init__(self, url: Secret, *, timeout: float = TIMEOUT_S) -> None:
        self._url = url
        self._timeout = timeout

    def send(self, notice: Notice) -> None:
        import httpx

        try:
            answer = httpx.post(
                self._url.reveal(),
                json={"text": notice.text()},
                timeout=self._timeout,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:  # its text may quote the URL: name the kind only
            raise NotifyError(f"webhook unreachable ({type(exc).__name__})") from None
        if answer.status_code >= 300:
            raise NotifyError(f"webhook answered {answer.status_code}")

    def __repr__(self) -> str:
        return "WebhookNotifier(<url hidden>)"


__all__ = ["Notice", "Notifier", "NotifyError", "Problem", "WebhookNotifier"]
