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
from typing import Any

# The pieces every document-style backend shares (bridge.state.documents), under the
# names this backend's modules use.
from bridge.state.documents import (
    PARSE_ERRORS,
    RELEASED,
    Malformed,
    describe_damage,
    now_ms,
    read_ack,
    read_deployment,
    read_lease,
    read_run,
)
from bridge.state.documents import Lease as LeaseDocument
from bridge.state.documents import ack_fields as ack_value
from bridge.state.documents import lease_fields as lease_document
from bridge.state.documents import run_fields as run_document
from bridge.state.model import Ack, PolicyRecord

POLICIES, RUNS, LEASES, ACKS = "policies", "runs", "leases", "acks"
DEPLOYMENT = "meta/deployment.json"
# What reading a damaged object raises (pydantic's ValidationError is a ValueError).


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


# -- leases ----------------------------------------------------------------------------


# -- acknowledgements ------------------------------------------------------------------


def replicas(document: dict[str, Any]) -> dict[str, Any]:
    """The replica map of a consumer's object, values unread."""
    found = document["replicas"]
    if not isinstance(found, dict):
        raise Malformed("replicas is not a JSON object")
    return found


def read_acks(consumer: str, document: dict[str, Any]) -> list[Ack]:
    return [read_ack(consumer, r, value) for r, value in replicas(document).items()]


# -- the deployment id -----------------------------------------------------------------

__all__ = [
    "DEPLOYMENT",
    "PARSE_ERRORS",
    "RELEASED",
    "LeaseDocument",
    "Malformed",
    "ack_path",
    "ack_value",
    "decode",
    "describe_damage",
    "encode",
    "lease_document",
    "lease_path",
    "now_ms",
    "policy_path",
    "read_ack",
    "read_acks",
    "read_deployment",
    "read_lease",
    "read_record",
    "read_run",
    "record_document",
    "record_version",
    "replicas",
    "run_document",
    "run_path",
]
