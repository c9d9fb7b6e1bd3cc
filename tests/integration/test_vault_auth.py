"""Logging in to a real OpenBao server as platforms run the bridge: a given token (renewed),
AppRole (a plain and a response-wrapped secret id), Kubernetes (against a loopback
TokenReview endpoint), JWT (signed here), in a namespace, and over mutual TLS.

Every test also checks that no credential it handed the bridge shows up in the logs or in
an error.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest

from bridge.config import parse_config
from bridge.config.vault import VaultSettings
from bridge.errors import ConfigError
from bridge.wiring import connections_for
from providers.vault.client import VaultAuthError, VaultClients
from tests.support.vault import BaoServer
from tests.support.vault_auth import (
    AppRole,
    JwtSigner,
    Kv,
    ServiceAccount,
    TlsFiles,
    alive,
    bao_mtls_server,
    child_token,
    tls_files,
    token_review_server,
)

pytestmark = pytest.mark.integration


# -- helpers ----------------------------------------------------------------------------


def _suffix() -> str:
    return secrets.token_hex(4)


def vault(address: str, **section: Any) -> VaultSettings:
    return VaultSettings.model_validate({"address": address, **section})


def logins(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith("vault_login"))


Shown = Callable[..., None]


@pytest.fixture
def never_shown(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Shown:
    """Checks that no given credential is in the logs, stdout, stderr or the given texts."""

    def check(*texts: str, secrets: list[str]) -> None:
        out, err = capfd.readouterr()
        shown = "\n".join([caplog.text, out, err, *texts])
        for value in secrets:
            assert value not in shown

    return check


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")


@pytest.fixture
def clients_made() -> Iterator[list[VaultClients]]:
    """Clients a test opens, closed after it (stopping their renewal threads)."""
    made: list[VaultClients] = []
    yield made
    for clients in made:
        clients.close()


def open_clients(
    made: list[VaultClients], settings: VaultSettings, environ: dict[str, str] | None = None
) -> VaultClients:
    clients = VaultClients(settings, environ or {})
    made.append(clients)
    return clients


# -- token ------------------------------------------------------------------------------


def test_token_from_the_wiring_environment_reads_a_secret(
    bao: BaoServer, clients_made: list[VaultClients], never_shown: Shown
) -> None:
    kv = Kv(bao)
    token = child_token(bao, kv.policy)
    clients = open_clients(clients_made, vault(bao.address), {"VAULT_TOKEN": token})
    assert kv.read(clients) == "v"
    never_shown(secrets=[token])


def test_vault_addr_and_vault_token_suffice_when_the_config_names_no_vault_section(
    bao: BaoServer, tmp_path: Path
) -> None:
    kv = Kv(bao)
    environ = {"VAULT_ADDR": bao.address, "VAULT_TOKEN": child_token(bao, kv.policy)}
    raw = {
        "langsmith": {"endpoint": "http://127.0.0.1:1984", "admin_key_env": "K"},
        "state": {"backend": "vault", "mount": kv.mount, "path": "state"},
        "policy": [
            {
                "name": "p",
                "workspaces": [str(uuid.UUID(int=1))],
                "ack": "grace",
                "target": [{"provider": "vault", "mount": kv.mount, "path": "app"}],
            }
        ],
    }
    with connections_for(parse_config(raw, environ=environ), environ) as connections:
        assert kv.read(connections.connection("vault").clients) == "v"


def test_token_falls_back_to_bao_token_then_names_both_when_unset(
    bao: BaoServer, clients_made: list[VaultClients]
) -> None:
    kv = Kv(bao)
    token = child_token(bao, kv.policy)
    assert kv.read(open_clients(clients_made, vault(bao.address), {"BAO_TOKEN": token})) == "v"
    with pytest.raises(ConfigError, match="VAULT_TOKEN or BAO_TOKEN is not set"):
        open_clients(clients_made, vault(bao.address)).client()


@pytest.mark.slow
def test_a_renewable_token_is_renewed_while_the_bridge_runs(
    bao: BaoServer,
    clients_made: list[VaultClients],
    caplog: pytest.LogCaptureFixture,
    never_shown: Shown,
) -> None:
    kv = Kv(bao)
    token = child_token(bao, kv.policy, ttl="3s", explicit_max_ttl="60s", renewable=True)
    clients = open_clients(clients_made, vault(bao.address), {"VAULT_TOKEN": token})
    assert kv.read(clients) == "v"
    time.sleep(4.5)  # past the TTL it was created with: alive only if renewed
    assert alive(bao, token)
    assert kv.read(clients) == "v"
    assert any(r.getMessage().startswith("vault_token_renewed") for r in caplog.records)
    clients.close()
    assert alive(bao, token)  # a given token is the deployment's: never revoked
    never_shown(secrets=[token])


def test_a_token_file_rewritten_after_revocation_is_read_again(
    bao: BaoServer, clients_made: list[VaultClients], tmp_path: Path
) -> None:
    kv = Kv(bao)
    sink = tmp_path / "token"
    first = child_token(bao, kv.policy)
    sink.write_text(first + "\n")
    clients = open_clients(clients_made, vault(bao.address, auth={"token_file": str(sink)}))
    assert kv.read(clients) == "v"
    bao.root().auth.token.revoke(first)
    sink.write_text(child_token(bao, kv.policy))  # as a Vault Agent sink does
    assert kv.read(clients) == "v"


def test_a_revoked_token_with_no_other_fails_naming_the_method(
    bao: BaoServer, clients_made: list[VaultClients], never_shown: Shown
) -> None:
    kv = Kv(bao)
    token = child_token(bao, kv.policy)
    clients = open_clients(clients_made, vault(bao.address), {"VAULT_TOKEN": token})
    assert kv.read(clients) == "v"
    bao.root().auth.token.revoke(token)
    with pytest.raises(VaultAuthError) as err:
        kv.read(clients)
    assert str(err.value).startswith(
        f"vault auth token at auth/token: kv read {kv.mount}/app: the token was refused, and "
        "logging in again failed: the token from VAULT_TOKEN was refused by lookup-self"
    )
    assert not err.value.retryable
    never_shown(str(err.value), repr(err.value), secrets=[token])


def test_a_policy_denial_is_not_mistaken_for_a_dead_token(
    bao: BaoServer, clients_made: list[VaultClients], caplog: pytest.LogCaptureFixture
) -> None:
    kv, other = Kv(bao), Kv(bao)
    token = child_token(bao, kv.policy)
    clients = open_clients(clients_made, vault(bao.address), {"VAULT_TOKEN": token})
    with pytest.raises(hvac.exceptions.Forbidden):
        other.read(clients)
    assert logins(caplog) == 1
    assert kv.read(clients) == "v"


# -- AppRole ----------------------------------------------------------------------------


def test_approle_logs_in_once_for_every_namespace_and_thread(
    bao: BaoServer,
    clients_made: list[VaultClients],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    never_shown: Shown,
) -> None:
    kv = Kv(bao)
    role = AppRole(bao, kv.policy)
    secret_id = role.secret_id()
    (tmp_path / "secret-id").write_text(secret_id)
    clients = open_clients(clients_made, vault(bao.address, auth=role.auth(tmp_path / "secret-id")))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(kv.read(clients))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["v"] * 8
    assert clients.client() is clients.client(None)
    assert logins(caplog) == 1
    never_shown(secrets=[secret_id, role.role_id])


def test_approle_logs_in_again_once_when_its_token_is_revoked_and_revokes_it_on_close(
    bao: BaoServer,
    clients_made: list[VaultClients],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    never_shown: Shown,
) -> None:
    kv = Kv(bao)
    role = AppRole(bao, kv.policy)
    (tmp_path / "secret-id").write_text(role.secret_id())
    clients = open_clients(clients_made, vault(bao.address, auth=role.auth(tmp_path / "secret-id")))
    held = clients.client()
    first = held.token
    bao.root().auth.token.revoke(first)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(kv.read(clients))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["v"] * 6
    assert logins(caplog) == 2  # six refused calls, one new login
    second = held.token  # the client held since before is carried along
    assert second != first
    assert alive(bao, second)
    clients.close()
    assert not alive(bao, second)  # a run leaves no token behind
    never_shown(secrets=[first, second])


def test_approle_fails_clearly_when_the_new_login_is_refused_too(
    bao: BaoServer,
    clients_made: list[VaultClients],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    never_shown: Shown,
) -> None:
    kv = Kv(bao)
    role = AppRole(bao, kv.policy, secret_id_num_uses=1)
    secret_id = role.secret_id()
    (tmp_path / "secret-id").write_text(secret_id)
    clients = open_clients(clients_made, vault(bao.address, auth=role.auth(tmp_path / "secret-id")))
    assert kv.read(clients) == "v"
    bao.root().auth.token.revoke(clients.client().token)
    with pytest.raises(VaultAuthError) as err:
        kv.read(clients)
    message = str(err.value)
    assert message.startswith(
        f"vault auth approle at auth/{role.mount}: kv read {kv.mount}/app: the token was "
        "refused, and logging in again failed: login refused (HTTP 400): "
    )
    assert logins(caplog) == 1
    never_shown(message, secrets=[secret_id, role.role_id])


def test_approle_with_a_missing_secret_id_file_is_a_config_error_naming_the_mount(
    bao: BaoServer, clients_made: list[VaultClients], tmp_path: Path
) -> None:
    role = AppRole(bao, "default")
    clients = open_clients(clients_made, vault(bao.address, auth=role.auth(tmp_path / "absent")))
    with pytest.raises(ConfigError, match=rf"approle at auth/{role.mount}\): secret_id_file"):
        clients.client()


def test_approle_unwraps_a_wrapped_secret_id_once_and_keeps_it_for_later_logins(
    bao: BaoServer,
    clients_made: list[VaultClients],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    never_shown: Shown,
) -> None:
    kv = Kv(bao)
    role = AppRole(bao, kv.policy)
    wrapping = role.wrapped_secret_id()
    (tmp_path / "wrapped").write_text(wrapping)
    auth = role.auth(tmp_path / "wrapped", secret_id_wrapped=True)
    clients = open_clients(clients_made, vault(bao.address, auth=auth))
    assert kv.read(clients) == "v"
    bao.root().auth.token.revoke(clients.client().token)
    assert kv.read(clients) == "v"  # the wrapping token is spent: the kept secret id logs in
    assert logins(caplog) == 2
    # A second process finds the wrapping token spent, and says so.
    again = open_clients(clients_made, vault(bao.address, auth=auth))
    with pytest.raises(VaultAuthError, match=rf"approle at auth/{role.mount}: .*wrapping token"):
        again.client()
    never_shown(secrets=[wrapping, role.role_id])


def test_approle_refuses_a_wrapping_token_that_wraps_something_else(
    bao: BaoServer, clients_made: list[VaultClients], tmp_path: Path
) -> None:
    role = AppRole(bao, "default")
    forged = bao.root().sys.wrap(payload={"secret_id": "chosen-by-an-attacker"}, ttl=60)
    (tmp_path / "wrapped").write_text(forged["wrap_info"]["token"])
    auth = role.auth(tmp_path / "wrapped", secret_id_wrapped=True)
    clients = open_clients(clients_made, vault(bao.address, auth=auth))
    with pytest.raises(VaultAuthError, match=r"was made by 'sys/wrapping/wrap'.*refused"):
        clients.client()


@pytest.mark.slow
def test_approle_logs_in_again_before_its_token_reaches_its_max_ttl(
    bao: BaoServer,
    clients_made: list[VaultClients],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kv = Kv(bao)
    role = AppRole(bao, kv.policy, token_ttl="2s", token_max_ttl="3s")
    (tmp_path / "secret-id").write_text(role.secret_id())
    clients = open_clients(clients_made, vault(bao.address, auth=role.auth(tmp_path / "secret-id")))
    first = clients.client().token
    time.sleep(4)
    assert not alive(bao, first)
    assert kv.read(clients) == "v"
    assert logins(caplog) >= 2
    assert not any(r.getMessage().startswith("vault_token_refused") for r in caplog.records)


# -- Kubernetes and JWT -----------------------------------------------------------------


def test_kubernetes_logs_in_with_the_service_account_token_reviewed_on_loopback(
    bao: BaoServer,
    clients_made: list[VaultClients],
    tmp_path: Path,
    never_shown: Shown,
) -> None:
    kv, signer, mount = Kv(bao), JwtSigner(), f"k8s-{_suffix()}"
    account, stranger = ServiceAccount("bridge", "langsmith-bridge"), ServiceAccount("x", "y")
    root = bao.root()
    root.sys.enable_auth_method("kubernetes", path=mount)
    with token_review_server() as reviews:
        root.adapter.post(
            f"/v1/auth/{mount}/config",
            json={
                "kubernetes_host": reviews.url,
                "disable_local_ca_jwt": True,
                # Required with disable_local_ca_jwt, unused over the loopback's plain HTTP.
                "kubernetes_ca_cert": tls_files(tmp_path).ca.read_text(),
            },
        )
        root.adapter.post(
            f"/v1/auth/{mount}/role/bridge",
            json={
                "bound_service_account_names": [account.name],
                "bound_service_account_namespaces": [account.namespace],
                "token_policies": [kv.policy],
            },
        )
        token = reviews.issue(account, signer)
        (tmp_path / "sa-token").write_text(token)
        auth = {"method": "kubernetes", "mount": mount, "role": "bridge"}
        settings = vault(bao.address, auth={**auth, "jwt_file": str(tmp_path / "sa-token")})
        assert kv.read(open_clients(clients_made, settings)) == "v"
        assert [r["spec"]["token"] for r in reviews.reviews] == [token]

        unknown = stranger.token(signer)
        (tmp_path / "sa-token").write_text(unknown)
        with pytest.raises(VaultAuthError, match=rf"kubernetes at auth/{mount}: login refused"):
            open_clients(clients_made, settings).client()
    never_shown(secrets=[token, unknown])


def test_kubernetes_defaults_to_the_pods_token_path() -> None:
    settings = vault("http://127.0.0.1:1", auth={"method": "kubernetes", "role": "r"})
    assert str(settings.auth.jwt_path) == "/var/run/secrets/kubernetes.io/serviceaccount/token"


def test_jwt_logs_in_with_a_workload_identity_token_signed_here(
    bao: BaoServer,
    clients_made: list[VaultClients],
    tmp_path: Path,
    never_shown: Shown,
) -> None:
    kv, signer, mount = Kv(bao), JwtSigner(), f"jwt-{_suffix()}"
    root = bao.root()
    root.sys.enable_auth_method("jwt", path=mount)
    root.adapter.post(
        f"/v1/auth/{mount}/config",
        json={"jwt_validation_pubkeys": [signer.public_pem], "bound_issuer": "https://ci.test"},
    )
    root.adapter.post(
        f"/v1/auth/{mount}/role/bridge",
        json={
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["langsmith-bridge"],
            "bound_subject": "repo:platform/bridge",
            "token_policies": [kv.policy],
        },
    )
    claims = {"iss": "https://ci.test", "sub": "repo:platform/bridge", "aud": "langsmith-bridge"}
    token = signer.sign(claims)
    (tmp_path / "id-token").write_text(token)
    auth = {
        "method": "jwt",
        "mount": mount,
        "role": "bridge",
        "jwt_file": str(tmp_path / "id-token"),
    }
    assert kv.read(open_clients(clients_made, vault(bao.address, auth=auth))) == "v"

    forged = JwtSigner().sign(claims)  # the right claims, another key
    (tmp_path / "id-token").write_text(forged)
    with pytest.raises(VaultAuthError, match=rf"jwt at auth/{mount}: login refused"):
        open_clients(clients_made, vault(bao.address, auth=auth)).client()
    never_shown(secrets=[token, forged])


# -- namespaces -------------------------------------------------------------------------


@pytest.fixture
def namespace(bao: BaoServer) -> str:
    name = f"team-{_suffix()}"
    bao.root().adapter.post(f"/v1/sys/namespaces/{name}")
    return name


def test_approle_in_a_namespace_reads_that_namespaces_secrets(
    bao: BaoServer, clients_made: list[VaultClients], tmp_path: Path, namespace: str
) -> None:
    kv = Kv(bao, namespace)
    role = AppRole(bao, kv.policy, namespace)
    (tmp_path / "secret-id").write_text(role.secret_id())
    settings = vault(bao.address, namespace=namespace, auth=role.auth(tmp_path / "secret-id"))
    clients = open_clients(clients_made, settings)
    assert kv.read(clients) == "v"
    assert kv.read(clients, namespace) == "v"


def test_a_root_login_reaches_a_child_namespace_its_policy_names(
    bao: BaoServer, clients_made: list[VaultClients], tmp_path: Path, namespace: str
) -> None:
    kv = Kv(bao, namespace)
    policy = f"cross-{_suffix()}"
    bao.root().sys.create_or_update_policy(
        policy, f'path "{namespace}/{kv.mount}/data/*" {{ capabilities = ["read"] }}'
    )
    role = AppRole(bao, policy)
    (tmp_path / "secret-id").write_text(role.secret_id())
    clients = open_clients(clients_made, vault(bao.address, auth=role.auth(tmp_path / "secret-id")))
    assert kv.read(clients, namespace) == "v"
    assert clients.client(namespace) is not clients.client()
    assert clients.client(namespace).token == clients.client().token


# -- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BaoServer, str, TlsFiles]]:
    with bao_mtls_server(tmp_path_factory.mktemp("bao-mtls")) as server:
        yield server


def test_tls_with_the_ca_and_a_client_certificate(
    mtls: tuple[BaoServer, str, TlsFiles], clients_made: list[VaultClients]
) -> None:
    server, address, tls = mtls
    kv = Kv(server)
    token = child_token(server, kv.policy)
    settings = vault(
        address,
        ca_cert=str(tls.ca),
        client_cert=str(tls.client_cert),
        client_key=str(tls.client_key),
    )
    assert kv.read(open_clients(clients_made, settings, {"VAULT_TOKEN": token})) == "v"


def test_tls_without_a_client_certificate_or_the_ca_fails_naming_tls(
    mtls: tuple[BaoServer, str, TlsFiles], clients_made: list[VaultClients]
) -> None:
    server, address, tls = mtls
    token = child_token(server, "default")
    for section in ({"ca_cert": str(tls.ca)}, {}):
        clients = open_clients(clients_made, vault(address, **section), {"VAULT_TOKEN": token})
        with pytest.raises(VaultAuthError, match="lookup-self: TLS failed") as err:
            clients.client()
        assert not err.value.retryable
        assert token not in str(err.value)
