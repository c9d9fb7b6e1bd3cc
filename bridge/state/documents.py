"""What the document-style state backends (Vault KV, GCS) store, and how they read it back:
the parts of their layouts that are the same whatever holds the bytes. Each backend keeps
its own paths and its own compare-and-swap token (a KV version, an object generation).

Reading is strict and says what is wrong in a few words, never quoting the document: a
damaged entry must not echo what may have been pasted into it.
"""

from __future__ import annotations

import contextlib
import math
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from bridge.errors import LeaseLost, StateError
from bridge.state.lease import HeldLease
from bridge.state.model import DEPLOYMENT_ID, Ack, Run

PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


class Malformed(ValueError):
    """A stored document that does not have the shape the bridge writes."""


def run_fields(run: Run) -> dict[str, Any]:
    return run.model_dump(mode="json")


def read_run(fields: dict[str, Any]) -> Run:
    return Run.model_validate(fields)


# -- leases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """A lease as stored: its holder's token (``""``: released) and its expiry."""

    holder: str
    expires_ms: int

    def free(self, now: datetime, me: str) -> bool:
        """Whether ``me`` may take it: released, expired, or already ours."""
        return self.holder in ("", me) or self.expires_ms < now_ms(now)

    @property
    def owner(self) -> str:
        """The holder's owner string, without its per-acquisition token."""
        return self.holder.rpartition("#")[0] or self.holder

    def gone(self) -> str:
        """Why this lease no longer fences the writes of whoever held it before."""
        if self.holder:
            return f"the lease was taken over by {self.owner}"
        return "the lease was released or is gone"


FENCE_SHARE = 3  # a fenced save needs the lease to last ttl / FENCE_SHARE more
BACKOFF_S = 0.02  # the longest first pause between tries; doubles each time, jittered


def check_fence(
    policy: str, held: HeldLease, read: Callable[[], Lease], clock: Callable[[], datetime]
) -> None:
    """The fence of a save: the stored lease (``read``, which raises ``LeaseLost`` unless
    it is still ``held``'s) expires at least ttl / FENCE_SHARE from now.

    Raises:
        LeaseLost: it is not, or not for long enough; ``held`` is then lost.
    """
    try:
        left_ms = read().expires_ms - now_ms(clock())
        if left_ms < 0:
            raise LeaseLost("the lease expired before a renewal succeeded")
    except LeaseLost as lost:
        held.lose(str(lost))
        raise LeaseLost(f"policy {policy!r}: {lost}; nothing was written") from lost
    needed = (held.ttl or timedelta(0)) / FENCE_SHARE
    if timedelta(milliseconds=left_ms) < needed:
        raise LeaseLost(
            f"policy {policy!r}: the lease expires in {left_ms / 1000:.3f}s, too soon "
            f"for a save (it needs {needed.total_seconds():.3f}s); nothing was written"
        )


def own_lease(read: Callable[[], dict[str, Any]] | None, me: str, kind: str) -> Lease:
    """The stored lease (``read`` parses it; ``None``: there is none), if ``me`` holds it.

    Raises:
        LeaseLost: saying why not (gone, unreadable, or whose it is now).
    """
    if read is None:
        raise LeaseLost("the lease is gone")
    try:
        lease = read_lease(read())
    except PARSE_ERRORS:
        raise LeaseLost(f"the lease {kind} was overwritten with something unreadable") from None
    if lease.holder != me:
        raise LeaseLost(lease.gone())
    return lease


@contextlib.contextmanager
def reading(where: str, what: str, policy: str | None, restore: str) -> Iterator[None]:
    """Make a failure to parse ``what`` (at ``where``) in the block one ``StateError`` line
    naming it, and how to ``restore`` it."""
    try:
        yield
    except PARSE_ERRORS as exc:
        of = f" of policy {policy!r}" if policy is not None else ""
        # Not chained: pydantic's and json's own messages quote the content.
        raise StateError(
            f"{where}: the {what}{of} is malformed ({describe_damage(exc)}); {restore}"
        ) from None


def pause(attempt: int, sleep: Callable[[float], None]) -> None:
    """The jittered, doubling pause before try ``attempt + 1`` of a contended write."""
    ceiling_ms = max(1, int(BACKOFF_S * 1000 * 2**attempt))
    sleep(secrets.randbelow(ceiling_ms + 1) / 1000)


def now_ms(now: datetime) -> int:
    return math.floor(now.timestamp() * 1000)


def lease_fields(holder: str, until: datetime) -> dict[str, Any]:
    return {
        "holder": holder,
        "expires_at": until.isoformat(),
        "expires_at_ms": math.ceil(until.timestamp() * 1000),
    }


RELEASED: dict[str, Any] = {"holder": "", "expires_at": "", "expires_at_ms": 0}


def read_lease(fields: dict[str, Any]) -> Lease:
    holder, expires = fields["holder"], fields["expires_at_ms"]
    if not isinstance(holder, str) or not isinstance(expires, int) or isinstance(expires, bool):
        raise Malformed("holder or expires_at_ms of the wrong type")
    return Lease(holder, expires)


# -- acknowledgements and the deployment id --------------------------------------------


def ack_fields(ack: Ack) -> dict[str, str]:
    """An ack as the value of its replica in the consumer document's map."""
    fields = ack.model_dump(mode="json", include={"fingerprint", "at", "proof"})
    return {name: value for name, value in fields.items() if value is not None}


def read_ack(consumer: str, replica: str, value: object) -> Ack:
    if not isinstance(value, dict):
        raise Malformed("an ack of a replica is not a JSON object")
    return Ack.model_validate({**value, "consumer": consumer, "replica": replica})


def read_deployment(fields: dict[str, Any]) -> str:
    value = fields["id"]
    if not isinstance(value, str) or not DEPLOYMENT_ID.fullmatch(value):
        raise Malformed("no valid id")
    return value


def describe_damage(exc: BaseException) -> str:
    """A failure to read a document, in a few words and without its content."""
    if isinstance(exc, ValidationError):
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    if isinstance(exc, KeyError):
        return f"no field {exc.args[0]!r}"
    if isinstance(exc, Malformed):
        return str(exc)
    return type(exc).__name__  # others may quote what they failed on
