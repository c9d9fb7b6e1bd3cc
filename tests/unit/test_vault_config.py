"""The ``[vault]`` section's auth and TLS settings, and what the Vault client makes of them
before any request: the hvac TLS arguments, the renewal schedule, and the config errors
that name the method and mount."""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.config import parse_config
from bridge.config.vault import VaultAuth, VaultSettings
from bridge.errors import ConfigError
from bridge.secrets import Secret
from providers.vault.auth import Authenticator, Token, VaultAuthError
from providers.vault.client import VaultClients, tls_arguments

WORKSPACE = uuid.UUID(int=1)
BASE = f"""\
[langsmith]
endpoint = "http://127.0.0.1:1984"
admin_key_env = "LANGSMITH_ADMIN_KEY"
[state]
backend = "file"
path = "state.db"
[[policy]]
name = "p"
workspaces = ["{WORKSPACE}"]
rotate_every = "30d"
key_ttl = "60d"
ack = "grace"
  [[policy.target]]
  provider = "file"
  path = "out/p.env"
"""


def auth(**fields: Any) -> VaultAuth:
    return VaultAuth.model_validate(fields)


def section(environ: dict[str, str], vault: dict[str, Any] | None = None) -> VaultSettings:
    raw = tomllib.loads(BASE)
    if vault is not None:
        raw["vault"] = vault
    return parse_config(raw, environ=environ).vault


# -- the model ---------------------------------------------------------------------------


def test_no_auth_section_means_a_token_from_vault_token() -> None:
    settings = VaultSettings()
    assert (settings.auth.method, settings.auth.token_env, settings.auth.mount_path) == (
        "token",
        "VAULT_TOKEN",
        "token",
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"method": "approle", "secret_id_file": "s"}, "one of role_id or role_id_file"),
        (
            {"method": "approle", "role_id": "r", "role_id_file": "f", "secret_id_file": "s"},
            "one of role_id or role_id_file",
        ),
        ({"method": "approle", "role_id": "r"}, "needs secret_id_file"),
        ({"method": "kubernetes"}, "needs role"),
        ({"method": "jwt", "role": "r"}, "needs jwt_file"),
        ({"role_id": "r"}, "role_id not used by method = 'token'"),
        ({"method": "jwt", "role": "r", "jwt_file": "j", "token_file": "t"}, "token_file not used"),
        ({"method": "approle", "role_id": "r", "secret_id_file": "s", "role": "x"}, "role not"),
        ({"mount": "../up"}, "mount"),
        ({"namespace": "bad space"}, "namespace"),
    ],
)
def test_auth_settings_that_cannot_log_in_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        auth(**fields)


def test_mounts_are_normalised_and_kubernetes_reads_the_pods_token() -> None:
    assert auth(method="jwt", role="r", jwt_file="t", mount="/ci/gitlab/").mount_path == "ci/gitlab"
    k8s = auth(method="kubernetes", role="r")
    assert (k8s.mount_path, str(k8s.jwt_path)) == (
        "kubernetes",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    )


def test_vault_variables_fill_what_the_section_leaves_out() -> None:
    environ = {
        "BAO_ADDR": "https://bao.internal:8200",
        "VAULT_NAMESPACE": "platform",
        "VAULT_CACERT": "/etc/ssl/vault-ca.pem",
    }
    settings = section(environ, {"auth": {"method": "kubernetes", "role": "bridge"}})
    assert settings.address == "https://bao.internal:8200"
    assert settings.namespace == "platform"
    assert str(settings.ca_cert) == "/etc/ssl/vault-ca.pem"
    explicit = section(environ, {"address": "https://other:8200", "namespace": "team"})
    assert (explicit.address, explicit.namespace) == ("https://other:8200", "team")


# -- TLS arguments -----------------------------------------------------------------------


def test_tls_arguments_pass_the_ca_and_the_client_pair(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client-key.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    settings = VaultSettings(
        address="https://vault:8200",
        ca_cert=tmp_path / "ca.pem",
        client_cert=tmp_path / "client.pem",
        client_key=tmp_path / "client-key.pem",
    )
    assert tls_arguments(settings) == {
        "verify": str(tmp_path / "ca.pem"),
        "cert": (str(tmp_path / "client.pem"), str(tmp_path / "client-key.pem")),
    }


def test_tls_arguments_without_files_verify_with_the_system_store_and_send_no_cert() -> None:
    # ``cert=False``, not ``None``: hvac would otherwise look for VAULT_CLIENT_CERT itself.
    assert tls_arguments(VaultSettings(address="https://vault:8200")) == {
        "verify": True,
        "cert": False,
    }


def test_a_missing_tls_file_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    settings = VaultSettings(address="https://vault:8200", ca_cert=tmp_path / "absent.pem")
    with pytest.raises(ConfigError, match=r"vault.ca_cert: .*absent.pem does not exist"):
        tls_arguments(settings)
    with pytest.raises(ValueError, match="both client_cert and client_key"):
        VaultSettings(client_cert=tmp_path / "c.pem")


def test_the_client_session_carries_the_tls_settings(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client-key.pem"):
        (tmp_path / name).write_text("x")
    settings = VaultSettings(
        address="https://vault:8200",
        ca_cert=tmp_path / "ca.pem",
        client_cert=tmp_path / "client.pem",
        client_key=tmp_path / "client-key.pem",
    )
    clients = VaultClients(settings, {})
    hvac_client = clients._make("")  # no request is made
    try:
        assert hvac_client.session.verify == str(tmp_path / "ca.pem")
        assert hvac_client.session.cert == (
            str(tmp_path / "client.pem"),
            str(tmp_path / "client-key.pem"),
        )
        assert hvac_client.adapter._kwargs["verify"] == str(tmp_path / "ca.pem")
    finally:
        clients.close()


# -- before any request --------------------------------------------------------------------


def no_client(token: str) -> Any:
    raise AssertionError("no request expected")


@pytest.mark.parametrize(
    ("fields", "environ", "message"),
    [
        ({}, {}, r"vault.auth \(token at auth/token\): token_env: VAULT_TOKEN or BAO_TOKEN"),
        ({"token_env": "MY_TOKEN"}, {"VAULT_TOKEN": "x"}, r"token_env: MY_TOKEN is not set"),
        ({"token_file": "{tmp}/absent"}, {}, r"token_file: cannot read .*absent"),
        (
            {"method": "approle", "mount": "ci", "role_id": "r", "secret_id_file": "{tmp}/empty"},
            {},
            r"vault.auth \(approle at auth/ci\): secret_id_file: .*empty is empty",
        ),
        (
            {"method": "jwt", "role": "r", "jwt_file": "{tmp}/absent"},
            {},
            r"vault.auth \(jwt at auth/jwt\): jwt_file: cannot read",
        ),
    ],
)
def test_missing_credentials_are_config_errors_naming_method_and_mount(
    tmp_path: Path, fields: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    (tmp_path / "empty").write_text("\n")
    fields = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in fields.items()}
    authenticator = Authenticator(auth(**fields), environ, "")
    with pytest.raises(ConfigError, match=message):
        authenticator.login(no_client)


def test_no_address_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no address"):
        VaultClients(VaultSettings(), {"VAULT_TOKEN": "t"}).client()


def test_auth_errors_name_method_mount_and_namespace_and_scrub_what_was_read(
    tmp_path: Path,
) -> None:
    (tmp_path / "sid").write_text("s3cr3t-id\n")
    authenticator = Authenticator(
        auth(method="approle", mount="ci", role_id="role-1", secret_id_file=tmp_path / "sid"),
        {},
        "team-a",
    )
    assert authenticator._secret_id(no_client) == "s3cr3t-id"
    error = authenticator.error("Vault said: s3cr3t-id and role-1 are bad")
    assert isinstance(error, VaultAuthError)
    assert str(error) == (
        "vault auth approle at auth/ci (namespace team-a): Vault said: <redacted> and "
        "<redacted> are bad"
    )
    assert (error.method, error.mount, error.namespace, error.retryable) == (
        "approle",
        "ci",
        "team-a",
        False,
    )


# -- the renewal schedule ----------------------------------------------------------------


def token(**fields: Any) -> Token:
    base: dict[str, Any] = {
        "value": Secret("t"),
        "ttl": 30.0,
        "increment": 30.0,
        "renewable": True,
        "obtained": 100.0,
        "from_login": False,
    }
    return Token(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 20.0),  # two thirds of the TTL
        ({"ttl": 0.0}, None),  # a root token never expires
        ({"renewable": False}, None),  # a given token that cannot be renewed: nothing to do
        ({"renewable": False, "from_login": True}, 20.0),  # log in again instead
        ({"capped": True}, None),  # a given token at its max TTL
        ({"capped": True, "from_login": True}, 20.0),
    ],
)
def test_a_token_is_refreshed_after_two_thirds_of_its_ttl(
    fields: dict[str, Any], expected: float | None
) -> None:
    assert token(**fields).refresh_in(now=100.0) == expected


def test_an_overdue_refresh_is_due_at_once() -> None:
    assert token().refresh_in(now=500.0) == 0.0
    assert "hvs.CAES" not in repr(token(value=Secret("hvs.CAESsecret")))  # masked
