"""Whether a key is accepted at an instant, and how its use is recorded: pure functions.

They take the ``AuthSwitches`` into account, so the store stays a store: a stale auth
cache keeps accepting a key for ``auth_cache_delay_s`` after it stopped working and
keeps refusing a new key for as long after its creation (``new_key_accepted_from``), and
``last_used_at`` moves only in steps of ``last_used_granularity_s``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from bridge.emulator.records import KeyRecord
from bridge.emulator.switches import AuthSwitches


def new_key_accepted_from(created_at: datetime, switches: AuthSwitches) -> datetime | None:
    """When a key created at ``created_at`` is first accepted (its ``accepted_from``).

    Fixed at creation, so changing the delay later never locks out a key already in use,
    as no cache forgets a key it has learnt. The bootstrap admin key has none: it existed
    before the emulator started, and a start-up delay must not lock every client out.
    """
    delay = switches.auth_cache_delay_s
    return created_at + timedelta(seconds=delay) if delay > 0 else None


def accepts(record: KeyRecord, now: datetime, switches: AuthSwitches) -> bool:
    """Whether ``record`` authenticates a request at ``now``.

    A key that stopped working (deleted, revoked, expired) is still accepted until the
    delay in force now has passed since it stopped; a new key only from its
    ``accepted_from``.

    Args:
        record: The key, deleted, revoked or expired ones included.
        now: The emulator's instant.
        switches: The auth switches in force.
    """
    delay = timedelta(seconds=switches.auth_cache_delay_s)
    refused_since = record.refused_since(now)
    if refused_since is not None and now >= refused_since + delay:
        return False
    return record.accepted_from is None or now >= record.accepted_from


def touched(record: KeyRecord, now: datetime, switches: AuthSwitches) -> KeyRecord:
    """``record`` with ``last_used_at`` moved to ``now``, unless the stored value is
    younger than the granularity (then ``record`` itself). A clock moved back always
    moves it, so it never lies in the emulator's future."""
    last = record.last_used_at
    step = timedelta(seconds=switches.last_used_granularity_s)
    if last is not None and timedelta(0) <= now - last < step:
        return record
    return replace(record, last_used_at=now)
