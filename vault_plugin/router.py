"""The LangSmith secrets engine's paths, as OpenBao calls them, on ``bridge.secrets_engine``.

| path | operations |
|---|---|
| ``config`` | read, create/update (admin key write-only), delete |
| ``rotate-root`` | update |
| ``roles/`` | list |
| ``roles/<name>`` | read, create/update, delete |
| ``creds/<name>`` | read (optional ``ttl``): a key under a renewable lease |

``renew`` and ``revoke`` are routed by the secret type in the lease's ``internal_data``;
``rollback`` (the host's periodic call) sweeps what crashes left; ``help`` answers for
every path. An unknown path is "unsupported path" (404), an operation a path lacks
"unsupported operation" (405); bad input is a 400 with the reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from bridge.engine.ack import AckError
from bridge.engine.ports import KeyService
from bridge.errors import BridgeError
from bridge.secrets import Secret, redact
from bridge.secrets_engine.creds import SECRET_TYPE, DynamicCreds, Limits
from bridge.secrets_engine.errors import BadRequest, EngineError, NotFound
from bridge.secrets_engine.models import EngineConfig, Role, parse_ttl
from bridge.secrets_engine.root import rotate_root
from bridge.secrets_engine.static import StaticRoles
from vault_plugin.contract import (
    ERR_BAD_REQUEST,
    ERR_INTERNAL,
    ERR_UNSUPPORTED_OPERATION,
    ERR_UNSUPPORTED_PATH,
    Host,
    LeasedSecret,
    PluginRequest,
    PluginResponse,
    SpecialPaths,
)
from vault_plugin.help import HELP, ROOT_HELP

log = logging.getLogger("bridge.vault_plugin")
Handler = Callable[[PluginRequest, "re.Match[str]"], PluginResponse]
CONFIG_FIELDS = frozenset(EngineConfig.model_fields)


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    operations: Mapping[str, Handler]
    exists: Callable[[re.Match[str]], bool] | None = None


def langsmith_keys(config: EngineConfig) -> KeyService:
    from bridge.langsmith import LangSmithClient

    return LangSmithClient(
        config.endpoint, Secret(config.admin_key), organization_id=config.organization_id
    )


class LangSmithRouter:
    def __init__(
        self,
        host: Host,
        backend_uuid: str,
        setup_config: Mapping[str, str] | None = None,
        *,
        keys: Callable[[EngineConfig], KeyService] = langsmith_keys,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.host = host
        instance = "vault-" + (re.sub(r"[^A-Za-z0-9]", "", backend_uuid)[:12] or "mount")
        self.creds = DynamicCreds(host.storage, keys, clock, instance)
        self.static = StaticRoles(host.storage, keys, clock, instance)
        name = r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})"
        self.routes = (
            Route("config", re.compile(r"config"), self._config_ops(), lambda _m: True),
            Route("rotate-root", re.compile(r"rotate-root"), {"update": self._rotate_root}),
            Route("tidy", re.compile(r"tidy"), {"update": self._tidy}),
            Route("roles/", re.compile(r"roles/?"), {"list": self._list_roles}),
            Route("roles/", re.compile(rf"roles/{name}"), self._role_ops(), self._role_exists),
            Route("creds/", re.compile(rf"creds/{name}"), {"read": self._issue}),
            Route("static-roles/", re.compile(r"static-roles/?"), {"list": self._list_static}),
            Route(
                "static-roles/ack",
                re.compile(rf"static-roles/{name}/ack"),
                {"update": self._static_ack},
            ),
            Route(
                "static-roles/",
                re.compile(rf"static-roles/{name}"),
                self._static_ops(),
                self._static_exists,
            ),
            Route("static-creds/", re.compile(rf"static-creds/{name}"), {"read": self._static}),
            Route("rotate-role/", re.compile(rf"rotate-role/{name}"), {"update": self._rotate}),
        )

    # -- the Router protocol ----------------------------------------------------------------

    def handle(self, request: PluginRequest) -> PluginResponse:
        try:
            return self._dispatch(request)
        except BadRequest as exc:
            return PluginResponse.failure(ERR_BAD_REQUEST, str(exc))
        except NotFound as exc:
            if request.operation == "read":
                return PluginResponse()  # the core answers 404
            return PluginResponse.failure(ERR_UNSUPPORTED_PATH, str(exc))
        except ValidationError as exc:
            return PluginResponse.failure(ERR_BAD_REQUEST, _invalid(exc))
        except (EngineError, BridgeError) as exc:
            log.warning("%s %s failed: %s", request.operation, request.path, redact(str(exc)))
            return PluginResponse.failure(ERR_INTERNAL, redact(str(exc)))

    def special_paths(self) -> SpecialPaths:
        return SpecialPaths(seal_wrap_storage=("config",))

    def existence(self, operation: str, path: str) -> tuple[bool, bool]:
        route, match = self._route(path)
        if route is None or match is None or route.exists is None:
            return False, False
        return True, route.exists(match)

    def cleanup(self) -> None:
        self.creds.close()

    def invalidate(self, key: str) -> None:
        if key == "config":
            self.creds.close()  # the next call builds a client with the new config

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, request: PluginRequest) -> PluginResponse:
        operation = request.operation
        if operation in ("renew", "revoke"):
            return self._lease(request)
        if operation == "rollback":
            self._sweep()
            return PluginResponse()
        if operation == "help":
            return self._help(request.path)
        route, match = self._route(request.path)
        if route is None or match is None:
            return PluginResponse.failure(ERR_UNSUPPORTED_PATH, f"no path {request.path!r}")
        if operation == "create" and "create" not in route.operations:
            operation = "update"  # one handler writes, whether or not the entry exists
        handler = route.operations.get(operation)
        if handler is None:
            return PluginResponse.failure(
                ERR_UNSUPPORTED_OPERATION, f"{request.path} does not support {operation}"
            )
        return handler(request, match)

    def _route(self, path: str) -> tuple[Route | None, re.Match[str] | None]:
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match:
                return route, match
        return None, None

    def _limits(self) -> Limits:
        return Limits(self.host.default_lease_ttl(), self.host.max_lease_ttl())

    def _sweep(self) -> dict[str, object]:
        """The periodic work: what crashes left, then the static roles' scheduled run."""
        swept = self.creds.rollback()
        config = self.creds.docs.read("config", EngineConfig)
        report = self.static.run(config) if config is not None else None
        failed = [o.policy for o in report.outcomes if not o.ok] if report else []
        return {
            "write_ahead_cleared": len(swept.wal_cleared),
            "orphans_deleted": swept.orphans_deleted,
            "static_roles_failed": failed,
        }

    def _tidy(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        """The host's periodic work, now (as ``pki/tidy`` is for PKI)."""
        return PluginResponse(data=self._sweep())

    # -- config and root ----------------------------------------------------------------------

    def _config_ops(self) -> dict[str, Handler]:
        return {"read": self._read_config, "update": self._write_config, "delete": self._delete}

    def _read_config(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        config = self.creds.docs.read("config", EngineConfig)
        if config is None:
            return PluginResponse()
        data = config.model_dump(mode="json", exclude={"admin_key"})
        data["sweep_after"] = int(config.sweep_after.total_seconds())
        data["admin_key_set"] = True  # write-only: never read back
        return PluginResponse(data=data)

    def _write_config(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        given = {k: str(v) for k, v in request.data.items() if k in CONFIG_FIELDS and v != ""}
        unknown = sorted(set(request.data) - set(CONFIG_FIELDS))
        if unknown:
            raise BadRequest(f"unknown config field(s): {', '.join(unknown)}")
        current = self.creds.docs.read("config", EngineConfig)
        merged = {**(current.model_dump() if current else {}), **given}
        if "endpoint" not in merged or "admin_key" not in merged:
            raise BadRequest("config needs endpoint and admin_key")
        self.creds.docs.write("config", EngineConfig.model_validate(merged))
        self.creds.close()
        return PluginResponse()

    def _delete(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        self.creds.docs.delete("config")
        self.creds.close()
        return PluginResponse()

    def _rotate_root(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        rotated = rotate_root(self.creds)
        data: dict[str, object] = {
            "key_id": rotated.key_id,
            "short_key": rotated.short_key,
            "previous_deleted": rotated.old_deleted,
        }
        return PluginResponse(data=data, warnings=rotated.warnings)

    # -- roles --------------------------------------------------------------------------------

    def _role_ops(self) -> dict[str, Handler]:
        return {"read": self._read_role, "update": self._write_role, "delete": self._delete_role}

    def _role_exists(self, match: re.Match[str]) -> bool:
        return self.creds.docs.read(f"roles/{match['name']}", Role) is not None

    def _list_roles(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        return PluginResponse(data={"keys": self.creds.docs.names("roles/")})

    def _read_role(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        role = self.creds.role(match["name"])
        data = role.model_dump(mode="json")
        data["ttl"] = int(role.ttl.total_seconds())
        data["max_ttl"] = int(role.max_ttl.total_seconds())
        return PluginResponse(data=data)

    def _write_role(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        name = match["name"]
        current = self.creds.docs.read(f"roles/{name}", Role)
        fields: dict[str, object] = current.model_dump() if current else {}
        data = request.data
        unknown = sorted(set(data) - set(Role.model_fields) - {"name"})
        if unknown:
            raise BadRequest(f"unknown role field(s): {', '.join(unknown)}")
        if "workspaces" in data:
            fields["workspaces"] = _list(data["workspaces"])
        for ttl in ("ttl", "max_ttl"):
            if ttl in data:
                fields[ttl] = _ttl(data[ttl], ttl)
        for text in ("role_id", "default_workspace", "description"):
            if text in data:
                fields[text] = str(data[text]) or None
        role = Role.model_validate({**fields, "name": name})
        if role.max_ttl and role.ttl > role.max_ttl:
            raise BadRequest("ttl cannot exceed max_ttl")
        self.creds.docs.write(f"roles/{name}", role)
        return PluginResponse()

    def _delete_role(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        self.creds.docs.delete(f"roles/{match['name']}")
        return PluginResponse()

    # -- creds and their leases ---------------------------------------------------------------

    def _issue(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        asked = request.data.get("ttl")
        ttl = _ttl(asked, "ttl") if asked not in (None, "") else None
        lease = self.creds.issue(match["name"], ttl, request.display_name, self._limits())
        secret = LeasedSecret(lease.internal, lease.ttl, lease.max_ttl, lease.renewable)
        return PluginResponse(data=lease.data, secret=secret)

    def _lease(self, request: PluginRequest) -> PluginResponse:
        secret = request.secret
        if secret is None or secret.internal.get("secret_type") != SECRET_TYPE:
            return PluginResponse.failure(
                ERR_UNSUPPORTED_OPERATION, "this secret is not one this engine issued"
            )
        if request.operation == "revoke":
            self.creds.revoke(secret.internal)
            return PluginResponse()
        ttl = self.creds.renew(secret.internal, self._limits())
        renewed = LeasedSecret(secret.internal, ttl, secret.max_ttl, True)
        return PluginResponse(secret=renewed)

    # -- static roles -----------------------------------------------------------------------

    def _static_ops(self) -> dict[str, Handler]:
        return {
            "read": self._read_static,
            "update": self._write_static,
            "delete": self._delete_static,
        }

    def _static_exists(self, match: re.Match[str]) -> bool:
        return self.static.read(match["name"], missing_ok=True) is not None

    def _list_static(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        return PluginResponse(data={"keys": self.static.names()})

    def _read_static(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        policy = self.static.read(match["name"])
        assert policy is not None
        return PluginResponse(data=policy.model_dump(mode="json", exclude={"target", "name"}))

    def _write_static(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        self.static.write(match["name"], request.data)
        return PluginResponse()

    def _delete_static(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        self.static.delete(match["name"])
        return PluginResponse()

    def _static(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        return PluginResponse(data=self.static.creds(match["name"]))

    def _static_ack(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        data = request.data
        consumer, replica, key = data.get("consumer"), data.get("replica"), data.get("api_key")
        if not all(isinstance(v, str) and v for v in (consumer, replica, key)):
            raise BadRequest("an ack needs consumer, replica and api_key (the key it now uses)")
        try:
            short = self.static.ack(match["name"], str(consumer), str(replica), str(key))
        except AckError:
            raise BadRequest("unknown key, static role or consumer") from None
        return PluginResponse(data={"acknowledged": short})

    def _rotate(self, request: PluginRequest, match: re.Match[str]) -> PluginResponse:
        name = match["name"]
        self.static.read(name)
        report = self.static.run(self.creds.config(), name, force=True)
        outcome = report.outcomes[0] if report else None
        if outcome is None or not outcome.ok:
            raise EngineError(outcome.error if outcome else "the rotation did not run")
        return PluginResponse(data={"rotated": name})

    def _help(self, path: str) -> PluginResponse:
        route, _match = self._route(path)
        text = ROOT_HELP if route is None else HELP[route.name]
        return PluginResponse(data={"help": text, "see_also": None})


def _list(value: object) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _ttl(value: object, name: str) -> timedelta:
    try:
        return parse_ttl(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _invalid(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'input'}: {error['msg']}"
        for error in exc.errors()
    )


__all__ = ["LangSmithRouter", "langsmith_keys"]
