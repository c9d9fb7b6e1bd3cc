"""The least-privilege IAM in infra/gcp grants exactly what the code calls.

Every ``.tf`` is parsed (python-hcl2); the permissions granted to the bridge's service account
are collected, custom roles by their permission lists and predefined roles through
``PREDEFINED`` (from the GCP IAM roles reference), and held equal to what the adapters call:
``SECRET_MANAGER_PERMISSIONS`` and the GCS calls of ``providers.gcp.gcs_objects``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra/gcp"

# Predefined roles used in infra/gcp, expanded (cloud.google.com/iam/docs/roles-permissions).
PREDEFINED = {"roles/secretmanager.secretAccessor": {"secretmanager.versions.access"}}

# gcs_objects: download_as_bytes (get), upload_from_string with if_generation_match (create;
# overwriting an existing object also needs delete, per the Cloud Storage IAM reference),
# list_blobs (list). No delete call is made.
STORAGE_PERMISSIONS = {
    "storage.objects.get",
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.list",
}
# Beyond the calls: nothing (the config and admin-key secrets need versions.access, a call
# permission already).
ALLOWED_EXTRA: set[str] = set()

BRIDGE = "serviceAccount:${google_service_account.bridge.email}"
IAM_TYPES = (
    "google_project_iam_member",
    "google_storage_bucket_iam_member",
    "google_secret_manager_secret_iam_member",
    "google_pubsub_topic_iam_member",
    "google_cloud_run_v2_job_iam_member",
    "google_cloud_run_v2_service_iam_member",
    "google_service_account_iam_member",
)


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def parsed() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(INFRA.glob("*.tf")):
        document = unquote(hcl2.loads(path.read_text()))
        for key, blocks in document.items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for block in parsed().get("resource", []):
        for kind, named in block.items():
            for name, body in named.items():
                found[kind, name] = body
    return found


def role_permissions(role: str) -> set[str]:
    match = re.fullmatch(r"\$\{google_project_iam_custom_role\.(\w+)\.id\}", role)
    if match:
        return set(resources()["google_project_iam_custom_role", match[1]]["permissions"])
    return PREDEFINED[role]


def bindings(member: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{kind}.{name}", body)
        for (kind, name), body in resources().items()
        if kind in IAM_TYPES and body["member"] == member
    ]


def condition(body: dict[str, Any]) -> str | None:
    blocks = body.get("condition")
    return blocks[0]["expression"] if blocks else None


def granted(member: str = BRIDGE) -> set[str]:
    return {p for _, body in bindings(member) for p in role_permissions(body["role"])}


def needed() -> set[str]:
    from providers.gcp.sm_calls import SECRET_MANAGER_PERMISSIONS

    return set(SECRET_MANAGER_PERMISSIONS) | STORAGE_PERMISSIONS


def test_every_file_parses() -> None:
    assert {p.name for p in INFRA.glob("*.tf")} >= {
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "iam.tf",
    }
    assert resources()


def test_every_call_the_code_makes_is_granted() -> None:
    assert needed() <= granted()


def test_nothing_broader_is_granted() -> None:
    assert granted() - needed() == ALLOWED_EXTRA


def test_no_predefined_role_is_broader_than_its_table() -> None:
    for _, body in bindings(BRIDGE):
        role = body["role"]
        assert role.startswith("${google_project_iam_custom_role.") or role in PREDEFINED


def test_bridge_secrets_are_reached_only_by_name_prefix() -> None:
    secret_root = "projects/${data.google_project.this.number}/secrets/${var.secret_prefix}"
    locals_ = {k: v for block in parsed()["locals"] for k, v in block.items()}
    assert locals_["secret_root"] == secret_root
    for where, body in bindings(BRIDGE):
        permissions = role_permissions(body["role"])
        if not any(p.startswith("secretmanager.") for p in permissions):
            continue
        if where.startswith("google_secret_manager_secret_iam_member."):
            assert permissions == {"secretmanager.versions.access"}  # one named secret
        elif permissions == {"secretmanager.secrets.create"}:
            assert condition(body) is None  # authorized on the project: cannot be narrowed
        else:
            assert where.startswith("google_project_iam_member."), where
            assert condition(body) == 'resource.name.startsWith("${local.secret_root}")'


def test_bridge_state_is_confined_to_the_prefix() -> None:
    for where, body in bindings(BRIDGE):
        if not where.startswith("google_storage_bucket_iam_member."):
            continue
        expression = condition(body)
        assert expression is not None, where
        if role_permissions(body["role"]) == {"storage.objects.list"}:
            assert "objectListPrefix" in expression
            assert expression.endswith('.startsWith("${local.state_prefix}/")')
        else:
            assert expression == 'resource.name.startsWith("${local.object_root}/")'


def render(expression: str, policy: str, consumer: str) -> str:
    return (
        expression.replace("${local.object_root}", "projects/_/buckets/B/objects/P")
        .replace("${each.value.policy}", policy)
        .replace("${each.key}", consumer)
    )


def object_names(expression: str) -> set[str]:
    parts = [part.strip() for part in expression.split("||")]
    names = set()
    for part in parts:
        match = re.fullmatch(r'resource\.name == "([^"]+)"', part)
        assert match, part  # exact names only: no startsWith, no wildcard
        names.add(match[1])
    return names


def test_a_consumer_may_write_only_its_own_ack() -> None:
    from providers.gcp.gcs_layout import ack_path, policy_path, run_path

    member = "${each.value.member}"
    root = "projects/_/buckets/B/objects/P/"
    writes = {"storage.objects.create", "storage.objects.delete"}
    seen = {}
    for where, body in bindings(member):
        permissions = role_permissions(body["role"])
        if where.startswith("google_secret_manager_secret_iam_member."):
            assert permissions == {"secretmanager.versions.access"}
            assert body["secret_id"] == "${each.value.secret}"
            continue
        assert where.startswith("google_storage_bucket_iam_member."), where
        assert not permissions - {"storage.objects.get"} - writes
        expression = condition(body)
        assert expression is not None, where
        names = object_names(render(expression, "tracing-prod", "api"))
        seen[where] = names
        if permissions & writes:
            assert names == {root + ack_path("tracing-prod", "api")}
        else:
            assert names == {
                root + policy_path("tracing-prod"),
                root + run_path("tracing-prod"),
            }
    assert len(seen) == 2  # the reads and the ack


def test_the_bucket_is_uniform_and_unversioned() -> None:
    bucket = resources()["google_storage_bucket", "state"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"] == [{"enabled": False}]


def test_the_job_runs_the_bridge_on_a_schedule() -> None:
    job = resources()["google_cloud_run_v2_job", "bridge"]
    task = job["template"][0]["template"][0]
    assert task["service_account"] == "${google_service_account.bridge.email}"
    container = task["containers"][0]
    assert [*container["command"], *container["args"]] == ["langsmith-bridge", "run"]
    scheduler = resources()["google_cloud_scheduler_job", "bridge"]
    assert scheduler["schedule"] == "*/${var.run_every} * * * *"
    uri = scheduler["http_target"][0]["uri"]
    assert uri.endswith("/jobs/${google_cloud_run_v2_job.bridge.name}:run")
    invoker = resources()["google_cloud_run_v2_job_iam_member", "scheduler"]
    assert invoker["member"].endswith("google_service_account.scheduler.email}")


def test_rotation_events_are_pushed_with_an_oidc_token() -> None:
    subscription = resources()["google_pubsub_subscription", "rotation"]
    assert subscription["topic"] == "${google_pubsub_topic.rotation.id}"
    assert "SECRET_ROTATE" in subscription["filter"]
    push = subscription["push_config"][0]
    assert push["push_endpoint"] == "${var.rotation_push_url}"
    token = push["oidc_token"][0]
    assert token["audience"] == "${local.audience}"
    assert token["service_account_email"] == "${google_service_account.pusher.email}"
    publisher = resources()["google_pubsub_topic_iam_member", "secretmanager_publisher"]
    assert publisher["role"] == "roles/pubsub.publisher"
    assert "google_project_service_identity.secretmanager.email" in publisher["member"]


@pytest.mark.parametrize("name", ["main.tf", "variables.tf", "outputs.tf", "iam.tf"])
def test_every_variable_used_is_declared(name: str) -> None:
    declared = {k for block in parsed()["variable"] for k in block}
    used = set(re.findall(r"\bvar\.(\w+)", (INFRA / name).read_text()))
    assert used <= declared
