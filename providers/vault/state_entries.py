"""What each entry of the Vault state holds, and how it is written and read back. Apart from
the store (``providers.vault.state``, which decides what to write when) so the layout can be
read in one place. Every path is under the ``[state]`` folder of the KV v2 mount::

    entry                              fields
    ---------------------------------  ---------------------------------------------------
    policies/<policy>                  record    the PolicyRecord as JSON text, minus its
                                                 version: the entry's KV version is the record's
                                       write_id  this store's token and a digest of the write
    runs/<policy>                      last_run_at, last_error, last_success_at (ISO 8601)
    leases/<policy>                    holder    owner string + a per-acquisition token; ""
                                                 once released
                                       expires_at (ISO 8601), expires_at_ms (Unix ms)
    acks/<policy>/<consumer>           replicas  JSON text: replica -> {fingerprint, at, proof}
    meta/deployment                    id        the deployment id

Records and replica maps are JSON *text* in one field, not nested JSON: OpenBao refuses a
request body of more than about 1000 JSON strings ("refused JSON input due to high
complexity"), which a record's history or a fleet's replicas would exceed as objects, while
one string may hold a megabyte. ``bao kv get -field=record`` shows it as it is.

A consumer's replicas share its one entry, so a Vault policy granting ``create``,
``update`` and ``read`` on ``<mount>/data/<folder>/acks/<policy>/<consumer>`` lets it
acknowledge and nothing else. Nothing here is key material: fingerprints, short keys, ids
and instants only. A read of an entry that is not what it should be raises one of
``PARSE_ERRORS``; ``describe_damage`` says what is wrong without repeating the content.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from bridge.state.model import DEPLOYMENT_ID, Ack, PolicyRecord, Run

POLICIES, RUNS, LEASES, ACKS = "policies", "runs", "leases", "acks"
DEPLOYMENT = "meta/deployment"
# What reading a damaged entry raises (pydantic's ValidationError is a ValueError).
PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


class Malformed(ValueError):
    """An entry of the wrong shape; its message names what, never the content."""


def policy_path(policy: str) -> str:
    return f"{POLICIES}/{policy}"


def run_path(policy: str) -> str:
    return f"{RUNS}/{policy}"


def lease_path(policy: str) -> str:
    return f"{LEASES}/{policy}"


def ack_path(policy: str, consumer: str) -> str:
    """The one entry a consumer writes: what its Vault policy grants."""
    return f"{ACKS}/{policy}/{consumer}"


# -- records and runs ------------------------------------------------------------------


def record_data(stored: PolicyRecord, token: str) -> dict[str, Any]:
    """The fields of a record's entry. ``write_id`` lets a save that lost its response
    recognise its own write, while another runner's identical write is still a conflict."""
    text = stored.model_dump_json(exclude={"version"})
    digest = hashlib.sha256(f"{stored.version}:{text}".encode()).hexdigest()[:16]
    return {"record": text, "write_id": f"{token}:{digest}"}


def read_record(policy: str, version: int, data: dict[str, Any]) -> PolicyRecord:
    """The record in an entry at KV ``version``."""
    record = _json(data["record"], "the record")
    if not isinstance(record, dict):
        raise Malformed("the record is not a JSON object")
    return PolicyRecord.model_validate({**record, "policy": policy, "version": version})


def run_data(run: Run) -> dict[str, Any]:
    return run.model_dump(mode="json")


def read_run(data: dict[str, Any]) -> Run:
    return Run.model_validate(data)


# -- leases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseEntry:
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
        """Why this entry no longer fences the writes of whoever held it before."""
        if self.holder:
            return f"the lease was taken over by {self.owner}"
        return "the lease was released or is gone"


def now_ms(now: datetime) -> int:
    return math.floor(now.timestamp() * 1000)


def lease_data(holder: str, until: datetime) -> dict[str, Any]:
    return {
        "holder": holder,
        "expires_at": until.isoformat(),
        "expires_at_ms": math.ceil(until.timestamp() * 1000),
    }


RELEASED: dict[str, Any] = {"holder": "", "expires_at": "", "expires_at_ms": 0}


def read_lease(data: dict[str, Any]) -> LeaseEntry:
    holder, expires = data["holder"], data["expires_at_ms"]
    if not isinstance(holder, str) or not isinstance(expires, int) or isinstance(expires, bool):
        raise Malformed("holder or expires_at_ms of the wrong type")
    return LeaseEntry(holder, expires)


# -- acknowledgements ------------------------------------------------------------------


def ack_entry(ack: Ack) -> dict[str, str]:
    """An ack as the value of its replica in the consumer entry's map."""
    fields = ack.model_dump(mode="json", include={"fingerprint", "at", "proof"})
    return {name: value for name, value in fields.items() if value is not None}


def replicas(data: dict[str, Any]) -> dict[str, Any]:
    """The replica map of a consumer's entry, entries unread."""
    found = _json(data["replicas"], "replicas")
    if not isinstance(found, dict):
        raise Malformed("replicas is not a JSON object")
    return found


def replicas_data(held: dict[str, Any]) -> dict[str, Any]:
    """The fields of a consumer's entry holding the replica map ``held``."""
    return {"replicas": json.dumps(held, separators=(",", ":"))}


def read_ack(consumer: str, replica: str, entry: object) -> Ack:
    if not isinstance(entry, dict):
        raise Malformed("an ack of a replica is not a JSON object")
    return Ack.model_validate({**entry, "consumer": consumer, "replica": replica})


def read_acks(consumer: str, data: dict[str, Any]) -> list[Ack]:
    return [read_ack(consumer, r, entry) for r, entry in replicas(data).items()]


# -- the deployment id -----------------------------------------------------------------


def read_deployment(data: dict[str, Any]) -> str:
    value = data["id"]
    if not isinstance(value, str) or not DEPLOYMENT_ID.fullmatch(value):
        raise Malformed("no valid id")
    return value


def _json(text: object, what: str) -> object:
    if not isinstance(text, str):
        raise Malformed(f"{what} is not JSON text")
    try:
        return json.loads(text)
    except ValueError:
        raise Malformed(f"{what} is not JSON") from None


def describe_damage(exc: BaseException) -> str:
    """A failure to read an entry, in a few words and without the entry's content."""
    if isinstance(exc, ValidationError):
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    if isinstance(exc, KeyError):
        return f"no field {exc.args[0]!r}"
    if isinstance(exc, Malformed):
        return str(exc)
    return type(exc).__name__  # others may quote what they failed on
