"""The KV v2 target against a real OpenBao server, beyond the shared contract: the fields
and ``custom_metadata`` it writes, check-and-set, ``max_versions``, retiring, adoption and
refusal, a mount that is missing or not KV v2, a token without the path, throttling and an
unreachable server, namespaces, the calls a no-op costs, and the official SDK configured
from the fields alone.

The "operator" is a root hvac client on the same server; nothing of the bridge is used to
look at what the target holds.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import hvac
import langsmith
import pytest

from bridge.config.targets import VaultTarget
from bridge.config.vault import VaultSettings
from bridge.emulator import Emulator
from bridge.errors import (
    BridgeError,
    OwnershipError,
    ProviderAccessDenied,
    ProviderConflict,
    ProviderNotFound,
    ProviderThrottled,
    ProviderUnavailable,
)
from bridge.payload import API_KEY, ENDPOINT, MARKER, WORKSPACE_ID, Payload
from bridge.provider import Provider
from bridge.secrets import Secret
from providers import Connections
from providers.vault.client import VaultClients
from providers.vault.target import VaultKvProvider
from tests.integration.conftest import Bridge, policy_toml
from tests.support.errors import full_text
from tests.support.keys import new_key, rotation_id
from tests.support.vault import BaoServer

pytestmark = pytest.mark.integration

T = TypeVar("T")
POLICY = "vault-policy"
PATH = "apps/tracing-prod/langsmith"
MANAGED = {"langsmith-bridge:managed": "true", "langsmith-bridge:policy": POLICY}
WORKSPACE = "0b6f1a9e-3f5c-4b8e-9a43-6c7e3e1d2a10"


def payload(policy: str = POLICY, key: str | None = None, **settings: str) -> Payload:
    return Payload(
        policy=policy,
        rotation_id=rotation_id(),
        api_key=Secret(key or new_key()),
        settings=settings or {ENDPOINT: "https://api.smith.langchain.com", WORKSPACE_ID: WORKSPACE},
    )


def vault_options(address: str, token: str, **settings: Any) -> dict[str, Any]:
    config = VaultSettings.model_validate({"address": address, **settings})
    return {"vault": {"settings": config, "environ": {"VAULT_TOKEN": token}}}


@pytest.fixture
def mount(bao: BaoServer) -> str:
    return bao.fresh_mount()


@pytest.fixture
def root(bao: BaoServer) -> Iterator[hvac.Client]:
    client = bao.root()
    yield client
    client.adapter.close()


@pytest.fixture
def connections(bao: BaoServer) -> Iterator[Connections]:
    with Connections(vault_options(bao.address, bao.root_token)) as opened:
        yield opened


def open_target(connections: Connections, mount: str, **fields: Any) -> Provider:
    config = VaultTarget.model_validate(
        {"provider": "vault", "mount": mount, "path": PATH, **fields}
    )
    return connections.open(config, POLICY)


def fields(root: hvac.Client, mount: str, version: int | None = None) -> dict[str, str]:
    read = root.secrets.kv.v2.read_secret_version(
        PATH, version=version, mount_point=mount, raise_on_deleted_version=True
    )
    data: dict[str, str] = read["data"]["data"]
    return data


def metadata(root: hvac.Client, mount: str) -> dict[str, Any]:
    meta: dict[str, Any] = root.secrets.kv.v2.read_secret_metadata(PATH, mount_point=mount)
    return meta["data"]


def write_foreign(root: hvac.Client, mount: str, custom: dict[str, str] | None = None) -> None:
    if custom is not None:
        root.adapter.post(f"/v1/{mount}/metadata/{PATH}", json={"custom_metadata": custom})
    root.secrets.kv.v2.create_or_update_secret(
        PATH, secret={API_KEY: new_key(), "OWNER": "a human"}, mount_point=mount
    )


# -- what is written -------------------------------------------------------------------


def test_the_payload_is_kv_fields_and_ownership_is_custom_metadata(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    written = payload()

    version = open_target(connections, mount).publish(written)

    assert version == "1"
    assert fields(root, mount) == written.reveal_env()
    assert set(fields(root, mount)) == {API_KEY, ENDPOINT, WORKSPACE_ID, MARKER}
    assert fields(root, mount)[MARKER] == f"policy={POLICY} rotation={written.rotation_id}"
    assert metadata(root, mount)["custom_metadata"] == MANAGED


def test_the_official_sdk_works_from_the_fields_hvac_reads(
    connections: Connections,
    root: hvac.Client,
    mount: str,
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workspace = emulator.bootstrap["workspace_ids"][0]
    created = httpx.post(
        f"{emulator.url}/api/v1/orgs/current/service-keys",
        json={"workspaces": [workspace], "description": "vault sdk"},
        headers={"X-API-Key": emulator.bootstrap["admin_key"]},
        timeout=5,
    ).json()
    written = payload(key=created["key"], **{ENDPOINT: emulator.url, WORKSPACE_ID: workspace})
    open_target(connections, mount).publish(written)

    read = fields(root, mount)  # as `bao kv get` shows them: nothing of the bridge's
    for name in (API_KEY, ENDPOINT, WORKSPACE_ID):
        monkeypatch.setenv(name, read[name])
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    client = langsmith.Client()
    try:
        projects = list(client.list_projects())
    finally:
        client.close()

    assert (client.api_key, client.api_url) == (created["key"], emulator.url)
    assert projects
    assert {str(p.tenant_id) for p in projects} == {workspace}


# -- check-and-set ---------------------------------------------------------------------


def test_a_write_between_observe_and_publish_fails_the_cas_and_is_kept(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    target = open_target(connections, mount)
    target.publish(payload())
    target.observe({})
    intruder = payload()  # another replica of this policy, say: marked as ours
    root.secrets.kv.v2.create_or_update_secret(
        PATH, secret=intruder.reveal_env(), mount_point=mount
    )

    with pytest.raises(ProviderConflict, match="check-and-set") as caught:
        target.publish(payload())

    assert caught.value.operation == "publish"
    assert metadata(root, mount)["current_version"] == 2
    assert fields(root, mount) == intruder.reveal_env()


def test_a_mount_that_requires_cas_is_written_as_any_other(
    bao: BaoServer, connections: Connections, root: hvac.Client
) -> None:
    mount = bao.fresh_mount(cas_required=True)
    target = open_target(connections, mount)

    target.publish(payload())
    newest = payload()
    assert target.publish(newest) == "2"

    assert fields(root, mount) == newest.reveal_env()


# -- versions --------------------------------------------------------------------------


def test_max_versions_is_set_on_the_secret_and_bounds_its_history(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    target = open_target(connections, mount, max_versions=3)
    for _ in range(5):
        target.publish(payload())

    meta = metadata(root, mount)
    assert meta["max_versions"] == 3
    assert sorted(int(n) for n in meta["versions"]) == [3, 4, 5]


def test_the_superseded_version_stays_readable_and_retire_destroys_only_it(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    target = open_target(connections, mount)
    first, old, new = payload(), payload(), payload()
    target.publish(first)
    old_version = target.publish(old)
    current = target.publish(new)
    assert fields(root, mount, version=int(old_version)) == old.reveal_env()

    target.retire(old_version)
    target.retire(old_version)  # already destroyed: fine
    target.retire(current)  # the current one: never
    target.retire("99")  # no such version

    versions = metadata(root, mount)["versions"]
    assert (versions["1"]["destroyed"], versions["2"]["destroyed"]) == (False, True)
    assert versions["3"]["destroyed"] is False
    assert fields(root, mount) == new.reveal_env()
    assert fields(root, mount, version=1) == first.reveal_env()


def test_a_deleted_current_version_is_seen_empty_and_written_over(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    target = open_target(connections, mount)
    target.publish(payload())
    root.secrets.kv.v2.delete_latest_version_of_secret(PATH, mount_point=mount)

    seen = target.observe({"1": "sha256:0000000000000000"})
    assert (seen.ownership, seen.fingerprint, seen.version) == ("ours", None, None)
    assert target.read() is None

    again = payload()
    assert target.publish(again) == "2"
    assert fields(root, mount) == again.reveal_env()


# -- ownership -------------------------------------------------------------------------


def test_a_secret_the_bridge_did_not_write_is_foreign_and_never_written(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    write_foreign(root, mount)
    before = metadata(root, mount)
    target = open_target(connections, mount)

    seen = target.observe({})
    with pytest.raises(OwnershipError, match="adopt = true") as caught:
        target.publish(payload())

    assert seen.ownership == "foreign"
    assert seen.detail is not None and "adopt = true" in seen.detail
    assert caught.value.reference == f"{mount}/{PATH}"
    assert metadata(root, mount) == before


def test_another_policys_secret_is_foreign_even_with_adopt(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    theirs = {"langsmith-bridge:managed": "true", "langsmith-bridge:policy": "other"}
    write_foreign(root, mount, custom=theirs)
    target = open_target(connections, mount, adopt=True)

    seen = target.observe({})
    with pytest.raises(OwnershipError, match="'other'"):
        target.publish(payload())

    assert (seen.ownership, seen.owner) == ("foreign", "other")
    assert metadata(root, mount)["current_version"] == 1


def test_adopt_takes_a_secret_over_keeping_its_other_metadata_and_settings(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    root.adapter.post(f"/v1/{mount}/metadata/{PATH}", json={"delete_version_after": "768h"})
    write_foreign(root, mount, custom={"team": "payments"})
    foreign = fields(root, mount)
    target = open_target(connections, mount, adopt=True)

    assert target.observe({}).ownership == "adoptable"
    ours = payload()
    assert target.publish(ours) == "2"

    meta = metadata(root, mount)
    assert meta["custom_metadata"] == {"team": "payments", **MANAGED}
    assert meta["delete_version_after"] == "768h0m0s"
    assert fields(root, mount) == ours.reveal_env()
    assert fields(root, mount, version=1) == foreign  # the replaced value stays readable
    assert target.observe({}).ownership == "ours"


# -- mounts and paths ------------------------------------------------------------------


def test_a_kv_v1_mount_is_refused_with_one_clear_error_and_nothing_written(
    bao: BaoServer, connections: Connections, root: hvac.Client
) -> None:
    mount = bao.fresh_mount(version=1)
    target = open_target(connections, mount)

    for attempt in (
        lambda: target.observe({}),
        lambda: target.publish(payload()),
        target.validate,
        target.read,
    ):
        with pytest.raises(ProviderNotFound, match=f"mount '{mount}' is KV version 1"):
            attempt()

    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v1.list_secrets("", mount_point=mount)


def test_a_missing_mount_is_named(connections: Connections) -> None:
    target = open_target(connections, "no-such-mount")

    for attempt in (lambda: target.observe({}), lambda: target.publish(payload()), target.read):
        with pytest.raises(ProviderNotFound, match="no mount 'no-such-mount'"):
            attempt()
    with pytest.raises(ProviderNotFound, match="no-such-mount"):
        target.validate()


def test_a_path_that_lies_in_another_mount_is_named_with_the_fix(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    target = open_target(connections, f"{mount}/apps")

    with pytest.raises(ProviderNotFound) as caught:
        target.publish(payload())

    assert f"lies in mount '{mount}'" in str(caught.value)
    assert f"set mount = '{mount}', path = 'apps/{PATH}'" in str(caught.value)
    with pytest.raises(hvac.exceptions.InvalidPath):  # nothing written anywhere in it
        root.secrets.kv.v2.list_secrets("", mount_point=mount)


def test_a_mount_of_another_engine_is_named(
    bao: BaoServer, connections: Connections, root: hvac.Client
) -> None:
    mount = f"transit-{secrets.token_hex(4)}"
    root.sys.enable_secrets_engine("transit", path=mount)

    with pytest.raises(ProviderNotFound, match="'transit' engine, not KV version 2"):
        open_target(connections, mount).observe({})


# -- access and faults -----------------------------------------------------------------


def limited_token(root: hvac.Client, rules: str) -> str:
    name = f"limited-{secrets.token_hex(4)}"
    root.sys.create_or_update_policy(name, rules)
    token: str = root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    return token


def test_a_token_without_the_path_is_denied_naming_path_and_operation(
    bao: BaoServer, root: hvac.Client, mount: str
) -> None:
    token = limited_token(root, f'path "{mount}/data/elsewhere/*" {{ capabilities = ["read"] }}')
    with Connections(vault_options(bao.address, token)) as limited:
        target = open_target(limited, mount)
        for operation, attempt in (
            ("observe", lambda: target.observe({})),
            ("publish", lambda: target.publish(payload())),
        ):
            with pytest.raises(ProviderAccessDenied) as caught:
                attempt()
            assert caught.value.operation == operation
            assert f"{mount}/metadata/{PATH}" in str(caught.value)
            assert "must grant read on it (permission denied)" in str(caught.value)

    with pytest.raises(hvac.exceptions.InvalidPath):
        metadata(root, mount)


def test_validate_names_each_capability_the_token_lacks(
    bao: BaoServer, root: hvac.Client, mount: str
) -> None:
    rules = (
        f'path "{mount}/data/{PATH}" {{ capabilities = ["read", "create", "update"] }}\n'
        f'path "{mount}/metadata/{PATH}" {{ capabilities = ["read"] }}'
    )
    token = limited_token(root, rules)
    with (
        Connections(vault_options(bao.address, token)) as limited,
        pytest.raises(ProviderAccessDenied) as caught,
    ):
        open_target(limited, mount).validate()

    message = str(caught.value)
    assert f"create on {mount}/metadata/{PATH}" in message  # the first publish claims it
    assert f"update on {mount}/destroy/{PATH}" in message  # retire
    assert f"on {mount}/data/{PATH}" not in message


def test_a_rate_limit_is_throttled_and_retryable(
    bao: BaoServer, connections: Connections, root: hvac.Client, mount: str
) -> None:
    quota = f"/v1/sys/quotas/rate-limit/{mount}"
    root.adapter.post(quota, json={"path": f"{mount}/", "rate": 1, "interval": "30s"})
    try:
        target = open_target(connections, mount)
        target.observe({})  # the one request the quota allows
        with pytest.raises(ProviderThrottled) as caught:
            target.observe({})
    finally:
        root.adapter.delete(quota)

    assert caught.value.retryable
    assert "rate limit" in str(caught.value)


class DeadClients:
    """Clients already logged in to a server that has since gone away."""

    def __init__(self, address: str) -> None:
        self.settings = VaultSettings(address=address)
        self.client = hvac.Client(url=address, token="a-token", timeout=2)

    def call(self, namespace: str | None, what: str, fn: Callable[[Any], T]) -> T:
        return fn(self.client)


def test_an_unreachable_server_is_unavailable_and_retryable(mount: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = VaultTarget.model_validate({"provider": "vault", "mount": mount, "path": PATH})
    clients = DeadClients(address)
    target = VaultKvProvider(config, POLICY, clients)

    for attempt in (lambda: target.observe({}), lambda: target.publish(payload())):
        with pytest.raises(ProviderUnavailable, match="Vault unavailable") as caught:
            attempt()
        assert caught.value.retryable
    clients.client.adapter.close()

    # Before any login, the login itself is what fails: retryable too.
    with (
        Connections(vault_options(address, "token", timeout="2s")) as connections,
        pytest.raises(BridgeError) as failed,
    ):
        open_target(connections, mount).observe({})
    assert failed.value.retryable


# -- namespaces and calls --------------------------------------------------------------


def test_a_target_in_a_namespace_is_written_there(bao: BaoServer, connections: Connections) -> None:
    namespace = f"team-{secrets.token_hex(3)}"
    bao.root().adapter.post(f"/v1/sys/namespaces/{namespace}")
    inside = bao.root(namespace=namespace)
    inside.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    target = open_target(connections, "kv", namespace=namespace)
    written = payload()

    target.publish(written)

    assert target.reference == f"{namespace}:kv/{PATH}"
    assert fields(inside, "kv") == written.reveal_env()
    with pytest.raises(ProviderNotFound):  # the root namespace has no such mount
        open_target(connections, "kv").observe({})


class CountingClients:
    """The connection's clients, with every KV call's name recorded."""

    def __init__(self, inner: VaultClients) -> None:
        self.inner = inner
        self.settings = inner.settings
        self.calls: list[str] = []

    def call(self, namespace: str | None, what: str, fn: Callable[[Any], T]) -> T:
        self.calls.append(what.split(f"/{PATH}")[0].removeprefix("vault "))
        return self.inner.call(namespace, what, fn)


def test_a_no_op_reads_only_the_metadata_and_a_rotation_three_calls(
    bao: BaoServer, mount: str
) -> None:
    config = VaultTarget.model_validate({"provider": "vault", "mount": mount, "path": PATH})
    inner = VaultClients(VaultSettings(address=bao.address), {"VAULT_TOKEN": bao.root_token})
    clients = CountingClients(inner)
    try:
        target = VaultKvProvider(config, POLICY, clients)
        first = payload()
        version = target.publish(first)

        clients.calls.clear()
        seen = VaultKvProvider(config, POLICY, clients).observe({version: first.fingerprint})
        assert (seen.ownership, seen.fingerprint, seen.content_read) == (
            "ours",
            first.fingerprint,
            False,
        )
        assert clients.calls == [f"read the metadata of {mount}/metadata"]

        clients.calls.clear()
        rotating = VaultKvProvider(config, POLICY, clients)
        rotating.observe({version: first.fingerprint})
        rotating.publish(payload())
        assert clients.calls == [
            f"read the metadata of {mount}/metadata",
            f"write {mount}/data",
            f"read {mount}/data",
        ]
    finally:
        inner.close()


def test_errors_name_the_target_never_the_key(
    connections: Connections, root: hvac.Client, mount: str
) -> None:
    ours = payload()
    target = open_target(connections, mount)
    target.publish(ours)
    root.secrets.kv.v2.create_or_update_secret(
        PATH, secret={**ours.reveal_env(), MARKER: "policy=other rotation=x"}, mount_point=mount
    )

    with pytest.raises(ProviderConflict, match="changed out of band") as caught:
        target.publish(payload())

    assert caught.value.reference == f"{mount}/{PATH}"
    assert ours.api_key.reveal() not in full_text(caught.value)


# -- through the engine ----------------------------------------------------------------


def test_a_rotation_cycle_through_the_cli_keeps_the_old_version_until_revoked(
    make_bridge: Callable[..., Bridge],
    emulator: Emulator,
    bao: BaoServer,
    root: hvac.Client,
    mount: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workspace = emulator.bootstrap["workspace_ids"][0]
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    bridge = make_bridge(
        f'[vault]\naddress = "{bao.address}"\n\n'
        + policy_toml(
            "vault-e2e",
            workspaces=[workspace],
            consumers=["api"],
            ack="explicit",
            min_overlap="0s",
        ).split("[[policy.target]]")[0]
        + f'[[policy.target]]\nprovider = "vault"\nmount = "{mount}"\npath = "{PATH}"\n'
    )

    code, _, err = bridge.cli("run")
    assert code == 0, err
    first = fields(root, mount)
    assert metadata(root, mount)["custom_metadata"] == {
        "langsmith-bridge:managed": "true",
        "langsmith-bridge:policy": "vault-e2e",
    }

    code, _, err = bridge.cli("rotate", "vault-e2e")
    assert code == 0, err
    second = fields(root, mount)
    assert second[API_KEY] != first[API_KEY]
    assert fields(root, mount, version=1) == first  # waiting for its consumer

    monkeypatch.setenv(API_KEY, second[API_KEY])
    code, _, err = bridge.cli("ack", "vault-e2e", "--consumer", "api", "--from-env")
    assert code == 0, err
    code, _, err = bridge.cli("run")
    assert code == 0, err

    versions = metadata(root, mount)["versions"]
    assert (versions["1"]["destroyed"], versions["2"]["destroyed"]) == (True, False)
    assert fields(root, mount) == second
    before = metadata(root, mount)
    code, _, err = bridge.cli("run")  # a no-op: nothing written
    assert code == 0, err
    assert metadata(root, mount) == before
