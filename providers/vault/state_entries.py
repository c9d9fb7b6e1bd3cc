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
from bridge.state.documents import Lease as LeaseEntry
from bridge.state.documents import ack_fields as ack_entry
from bridge.state.documents import lease_fields as lease_data
from bridge.state.documents import run_fields as run_data
from bridge.state.model import Ack, PolicyRecord

POLICIES, RUNS, LEASES, ACKS = "policies", "runs", "leases", "acks"
DEPLOYMENT = "meta/deployment"
# What reading a damaged entry raises (pydantic's ValidationError is a ValueError).


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


# -- leases ----------------------------------------------------------------------------


# -- acknowledgements ------------------------------------------------------------------


def replicas(data: dict[str, Any]) -> dict[str, Any]:
    """The replica map of a consumer's entry, entries unread."""
    found = _json(data["replicas"], "replicas")
    if not isinstance(found, dict):
        raise Malformed("replicas is not a JSON object")
    return found


def replicas_data(held: dict[str, Any]) -> dict[str, Any]:
    """The fields of a consumer's entry holding the replica map ``held``."""
    return {"replicas": json.dumps(held, separators=(",", ":"))}


def read_acks(consumer: str, data: dict[str, Any]) -> list[Ack]:
    return [read_ack(consumer, r, entry) for r, entry in replicas(data).items()]


# -- the deployment id -----------------------------------------------------------------


def _json(text: object, what: str) -> object:
    if not isinstance(text, str):
        raise Malformed(f"{what} is not JSON text")
    try:
        return json.loads(text)
    except ValueError:
        raise Malformed(f"{what} is not JSON") from None


__all__ = [
    "DEPLOYMENT",
    "PARSE_ERRORS",
    "RELEASED",
    "LeaseEntry",
    "Malformed",
    "ack_entry",
    "ack_path",
    "describe_damage",
    "lease_data",
    "lease_path",
    "now_ms",
    "policy_path",
    "read_ack",
    "read_acks",
    "read_deployment",
    "read_lease",
    "read_record",
    "read_run",
    "record_data",
    "replicas",
    "replicas_data",
    "run_data",
    "run_path",
]
