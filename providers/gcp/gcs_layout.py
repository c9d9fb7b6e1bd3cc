"""What each object of the GCS state holds, and how it is written and read back. Apart from
the store (``providers.gcp.gcs_state``, which decides what to write when) so the layout can
be read in one place. Every name is under the ``[state]`` prefix of the bucket; every
object is one JSON document::

    object                             fields
    ---------------------------------  ---------------------------------------------------
    policies/<policy>.json             version   the record's version (the CAS token is
                                                 the object's generation)
                                       record    the PolicyRecord, minus version and policy
                                       write_id  this store's token and a digest of the write
    runs/<policy>.json                 last_run_at, last_error, last_success_at (ISO 8601)
    leases/<policy>.json               holder    owner string + a per-acquisition token; ""
                                                 once released (a lease is never deleted)
                                       expires_at (ISO 8601), expires_at_ms (Unix ms)
    acks/<policy>/<consumer>.json      replicas  replica -> {fingerprint, at, proof}
    meta/deployment.json               id        the deployment id

A consumer's replicas share its one object, so an IAM condition on
``resource.name == ".../objects/<prefix>/acks/<policy>/<consumer>.json"`` lets it
acknowledge and nothing else. Nothing here is key material: fingerprints, short keys, ids
and instants only. A read of an object that is not what it should be raises one of
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
DEPLOYMENT = "meta/deployment.json"
# What reading a damaged object raises (pydantic's ValidationError is a ValueError).
PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


class Malformed(ValueError):
    """An object of the wrong shape; its message names what, never the content."""


def policy_path(policy: str) -> str:
    return f"{POLICIES}/{policy}.json"


def run_path(policy: str) -> str:
    return f"{RUNS}/{policy}.json"


def lease_path(policy: str) -> str:
    return f"{LEASES}/{policy}.json"


def ack_path(policy: str, consumer: str) -> str:
    """The one object a consumer writes: what its IAM condition grants."""
    return f"{ACKS}/{policy}/{consumer}.json"


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def decode(data: bytes) -> dict[str, Any]:
    """The JSON object in ``data``.

    Raises:
        Malformed: it is not JSON, or not an object.
    """
    try:
        found = json.loads(data)
    except ValueError:
        raise Malformed("not JSON") from None
    if not isinstance(found, dict):
        raise Malformed("not a JSON object")
    return found


# -- records and runs ------------------------------------------------------------------


def record_document(stored: PolicyRecord, token: str) -> dict[str, Any]:
    """A record's object. ``write_id`` lets a save that lost its response recognise its
    own write, while another runner's identical write is still a conflict."""
    record = stored.model_dump(mode="json", exclude={"version", "policy"})
    text = json.dumps(record, sort_keys=True)
    digest = hashlib.sha256(f"{stored.version}:{text}".encode()).hexdigest()[:16]
    return {"version": stored.version, "record": record, "write_id": f"{token}:{digest}"}


def record_version(document: dict[str, Any]) -> int:
    version = document["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Malformed("version is not a positive integer")
    return version


def read_record(policy: str, document: dict[str, Any]) -> PolicyRecord:
    record = document["record"]
    if not isinstance(record, dict):
        raise Malformed("the record is not a JSON object")
    version = record_version(document)
    return PolicyRecord.model_validate({**record, "policy": policy, "version": version})


def run_document(run: Run) -> dict[str, Any]:
    return run.model_dump(mode="json")


def read_run(document: dict[str, Any]) -> Run:
    return Run.model_validate(document)


# -- leases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseDocument:
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
        """Why this object no longer fences the writes of whoever held it before."""
        if self.holder:
            return f"the lease was taken over by {self.owner}"
        return "the lease was released or is gone"


def now_ms(now: datetime) -> int:
    return math.floor(now.timestamp() * 1000)


def lease_document(holder: str, until: datetime) -> dict[str, Any]:
    return {
        "holder": holder,
        "expires_at": until.isoformat(),
        "expires_at_ms": math.ceil(until.timestamp() * 1000),
    }


RELEASED: dict[str, Any] = {"holder": "", "expires_at": "", "expires_at_ms": 0}


def read_lease(document: dict[str, Any]) -> LeaseDocument:
    holder, expires = document["holder"], document["expires_at_ms"]
    if not isinstance(holder, str) or not isinstance(expires, int) or isinstance(expires, bool):
        raise Malformed("holder or expires_at_ms of the wrong type")
    return LeaseDocument(holder, expires)


# -- acknowledgements ------------------------------------------------------------------


def ack_value(ack: Ack) -> dict[str, str]:
    """An ack as the value of its replica in the consumer object's map."""
    fields = ack.model_dump(mode="json", include={"fingerprint", "at", "proof"})
    return {name: value for name, value in fields.items() if value is not None}


def replicas(document: dict[str, Any]) -> dict[str, Any]:
    """The replica map of a consumer's object, values unread."""
    found = document["replicas"]
    if not isinstance(found, dict):
        raise Malformed("replicas is not a JSON object")
    return found


def read_ack(consumer: str, replica: str, value: object) -> Ack:
    if not isinstance(value, dict):
        raise Malformed("an ack of a replica is not a JSON object")
    return Ack.model_validate({**value, "consumer": consumer, "replica": replica})


def read_acks(consumer: str, document: dict[str, Any]) -> list[Ack]:
    return [read_ack(consumer, r, value) for r, value in replicas(document).items()]


# -- the deployment id -----------------------------------------------------------------


def read_deployment(document: dict[str, Any]) -> str:
    value = document["id"]
    if not isinstance(value, str) or not DEPLOYMENT_ID.fullmatch(value):
        raise Malformed("no valid id")
    return value


def describe_damage(exc: BaseException) -> str:
    """A failure to read an object, in a few words and without the object's content."""
    if isinstance(exc, ValidationError):
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    if isinstance(exc, KeyError):
        return f"no field {exc.args[0]!r}"
    if isinstance(exc, Malformed):
        return str(exc)
    return type(exc).__name__  # others may quote what they failed on
