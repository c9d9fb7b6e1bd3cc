"""``rotate-root``: replace the engine's admin key with a successor it mints itself.

The successor is an organization-scoped service key with the configured org role
(``admin_org_role_id``, the organization's admin role). It is verified (LangSmith may refuse
a brand-new key for up to a minute, so verification is retried), then saved as the config's
admin key, and only then is the old key deleted, with the new one. A crash before the save
leaves the old key in charge and a write-ahead record whose key the next ``rollback``
deletes; a crash after it leaves at worst the old key alive, reported by the next rotation.
The old key is deleted only when its id is known (``admin_key_id``: given with the config,
or recorded by an earlier rotation); otherwise the answer says it was left in place.
"""

from __future__ import annotations

import secrets as _random
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from bridge.engine.ports import KeyService
from bridge.errors import (
    LangSmithAuthError,
    LangSmithError,
    LangSmithNotFound,
    LangSmithPermissionError,
)
from bridge.marker import Marker
from bridge.secrets import Secret
from bridge.secrets_engine.creds import POLICY_PREFIX, DynamicCreds
from bridge.secrets_engine.errors import BadRequest, EngineError
from bridge.secrets_engine.models import Wal

VERIFY_ATTEMPTS = 20
VERIFY_DELAY_S = 3.0
ROOT = f"{POLICY_PREFIX}root"


@dataclass(frozen=True)
class Rotated:
    key_id: str
    short_key: str
    old_deleted: bool
    warnings: tuple[str, ...] = ()


def rotate_root(creds: DynamicCreds, sleep: Callable[[float], None] = time.sleep) -> Rotated:
    config = creds.config()
    if not config.admin_org_role_id:
        raise BadRequest(
            "rotate-root needs admin_org_role_id in langsmith/config: the org role "
            "(the organization's admin role) its successor key is given"
        )
    now = creds.clock()
    wal = Wal(id=_random.token_hex(8), role="root", started_at=now)
    creds.docs.write(f"wal/{wal.id}", wal)
    marker = Marker(creds.instance, ROOT, wal.id)
    with creds.client() as keys:
        created = keys.create_service_key(
            description=f"vault rotate-root {marker.description()}",
            org_role_id=config.admin_org_role_id,
        )
        _verify(keys, created.key, sleep)
    updated = config.model_copy(
        update={"admin_key": created.key.reveal(), "admin_key_id": created.info.id}
    )
    creds.docs.write("config", updated)  # from here on, the successor is in charge
    creds.docs.delete(f"wal/{wal.id}")
    old_deleted, warnings = False, []
    if config.admin_key_id:
        with creds.client() as keys, suppress(LangSmithNotFound):
            keys.delete_service_key(config.admin_key_id)
        old_deleted = True
    else:
        warnings.append(
            "the previous admin key was left in place: its id is unknown (give admin_key_id "
            "with the config to have rotate-root delete it); delete it in LangSmith"
        )
    return Rotated(created.info.id, created.info.short_key, old_deleted, tuple(warnings))


def _verify(keys: KeyService, key: Secret, sleep: Callable[[float], None]) -> None:
    for attempt in range(1, VERIFY_ATTEMPTS + 1):
        try:
            keys.verify_key(key)
            return
        except (LangSmithAuthError, LangSmithPermissionError) as exc:
            if exc.status is None:
                raise EngineError(f"the successor admin key cannot be sent: {exc}") from None
            if attempt == VERIFY_ATTEMPTS:
                break
            sleep(VERIFY_DELAY_S)
        except LangSmithError as exc:
            raise EngineError(f"the successor admin key cannot be checked: {exc}") from None
    raise EngineError(
        "LangSmith did not accept the successor admin key; the old one stays in charge "
        "(the successor is deleted by the next rollback)"
    )


__all__ = ["Rotated", "rotate_root"]
