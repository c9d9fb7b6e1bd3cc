"""Configuration of the Vault / OpenBao store: the ``[vault]`` section (where the server is,
how the bridge logs in) and the KV v2 target and state models. SDK-free, so any config
validates without the ``vault`` extra installed.

``VAULT_ADDR`` (or ``BAO_ADDR``), ``VAULT_NAMESPACE`` and ``VAULT_CACERT`` fill what the
section leaves out; ``load_config`` reads them, at the edge, never the store.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bridge.config.base import Frozen
from bridge.config.durations import Duration

# KV mounts and paths: segments of letters, digits and -_.@ separated by single slashes.
_SEGMENTS = re.compile(r"^[A-Za-z0-9_.@-]+(/[A-Za-z0-9_.@-]+)*$")
NAMESPACE = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$"

AuthMethod = Literal["token", "approle", "kubernetes", "jwt"]
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def _kv_path(value: str, what: str) -> str:
    value = value.strip("/")
    if not _SEGMENTS.fullmatch(value) or ".." in value.split("/"):
        raise ValueError(f"{what} {value!r} must be slash-separated [A-Za-z0-9_.@-] segments")
    return value


class VaultAuth(Frozen):
    """How the bridge logs in. One login per Vault address per process, renewed while the
    bridge runs; an expired or revoked token logs in again once.

    The login happens in ``namespace`` (default: the section's); the token it yields is
    used for targets in that namespace and its children, as Vault scopes tokens.
    """

    method: AuthMethod = Field("token", description="token | approle | kubernetes | jwt")
    mount: str | None = Field(None, description="Auth mount path; default: the method's name.")
    namespace: str | None = Field(
        None,
        pattern=NAMESPACE,
        description="Namespace of the auth mount; default: [vault] namespace.",
    )
    token_env: str = Field(
        "VAULT_TOKEN",
        description="method=token: the variable holding the token (the default falls back "
        "to BAO_TOKEN).",
    )
    token_file: Path | None = Field(
        None, description="method=token: a file holding the token (instead of token_env)."
    )
    role_id: str | None = Field(None, description="method=approle: the role id.")
    role_id_file: Path | None = Field(
        None, description="method=approle: a file holding the role id (instead of role_id)."
    )
    secret_id_file: Path | None = Field(
        None, description="method=approle: a file holding the secret id."
    )
    secret_id_wrapped: bool = Field(
        False, description="method=approle: the file holds a response-wrapping token."
    )
    role: str | None = Field(None, description="method=kubernetes|jwt: the Vault role.")
    jwt_file: Path | None = Field(
        None,
        description="method=kubernetes|jwt: the token file (kubernetes default: the pod's "
        "service-account token).",
    )

    @field_validator("mount")
    @classmethod
    def _check_mount(cls, value: str | None) -> str | None:
        return None if value is None else _kv_path(value, "mount")

    @model_validator(mode="after")
    def _check_method(self) -> VaultAuth:
        if self.method == "approle":
            if bool(self.role_id) == bool(self.role_id_file):
                raise ValueError("method = 'approle' needs one of role_id or role_id_file")
            if not self.secret_id_file:
                raise ValueError("method = 'approle' needs secret_id_file")
        if self.method in ("kubernetes", "jwt") and not self.role:
            raise ValueError(f"method = {self.method!r} needs role")
        if self.method == "jwt" and not self.jwt_file:
            raise ValueError("method = 'jwt' needs jwt_file")
        stray = [
            name
            for name, methods in _METHOD_FIELDS.items()
            if name in self.model_fields_set and self.method not in methods
        ]
        if stray:
            # Most likely a forgotten ``method``: fail loudly rather than log in otherwise.
            raise ValueError(f"{', '.join(stray)} not used by method = {self.method!r}")
        return self

    @property
    def mount_path(self) -> str:
        return (self.mount or self.method).strip("/")

    @property
    def jwt_path(self) -> Path | None:
        if self.method == "kubernetes":
            return self.jwt_file or SERVICE_ACCOUNT_TOKEN
        return self.jwt_file


# The method-specific fields, and the methods that read them.
_METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "token_env": ("token",),
    "token_file": ("token",),
    "role_id": ("approle",),
    "role_id_file": ("approle",),
    "secret_id_file": ("approle",),
    "secret_id_wrapped": ("approle",),
    "role": ("kubernetes", "jwt"),
    "jwt_file": ("kubernetes", "jwt"),
}


class VaultSettings(Frozen):
    """The ``[vault]`` section: the server every Vault target and the Vault state use."""

    address: str | None = Field(None, description="Server URL; default: VAULT_ADDR, else BAO_ADDR.")
    namespace: str | None = Field(
        None, pattern=NAMESPACE, description="Default namespace; default: VAULT_NAMESPACE."
    )
    ca_cert: Path | None = Field(None, description="CA bundle; default: VAULT_CACERT.")
    client_cert: Path | None = Field(None, description="Client certificate (TLS auth).")
    client_key: Path | None = Field(None, description="Its private key.")
    timeout: Duration = Field(timedelta(seconds=10), description="Per-request timeout.")
    auth: VaultAuth = Field(default_factory=VaultAuth)

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
            raise ValueError(f"address {value!r} must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _check_tls(self) -> VaultSettings:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("set both client_cert and client_key, or neither")
        return self


class _KvAddress(Frozen):
    """Where a KV v2 entry lives: its mount and path (checked alike), and its namespace."""

    mount: str
    path: str
    namespace: str | None = Field(None, pattern=NAMESPACE, description="Default: [vault]'s.")

    @field_validator("mount")
    @classmethod
    def _check_mount(cls, value: str) -> str:
        return _kv_path(value, "mount")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _kv_path(value, "path")


class VaultTarget(_KvAddress):
    """A KV v2 secret holding the payload as fields (``LANGSMITH_API_KEY``, ...), so Vault
    Agent templates, the Vault Secrets Operator and External Secrets read it as any secret.

    Every write is a check-and-set on the version read; the bridge's ownership lives in the
    secret's ``custom_metadata``. The superseded version stays readable until its key is
    revoked, then is destroyed.
    """

    provider: Literal["vault"]
    mount: str = Field(description="The KV v2 mount, e.g. 'secret'.")
    path: str = Field(description="The secret's path in the mount.")
    max_versions: int | None = Field(
        None, ge=2, le=1000, description="Versions the secret keeps (sets its metadata)."
    )
    adopt: bool = Field(False, description="Take over an existing secret the bridge did not write.")

    @property
    def target_id(self) -> str:
        return f"vault:{(self.namespace or '').strip('/')}:{self.mount}/{self.path}"


class VaultStateSettings(_KvAddress):
    """State as KV v2 entries under one path, written with check-and-set."""

    backend: Literal["vault"]
    mount: str = Field("secret", description="The KV v2 mount.")
    path: str = Field("langsmith-bridge/state", description="The folder the entries live in.")
