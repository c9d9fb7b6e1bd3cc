"""How records look on the wire: the spec's response shapes, built from state records."""

from __future__ import annotations

from typing import Any

from bridge.emulator.bodies import zstd_available
from bridge.emulator.clock import isoformat
from bridge.emulator.records import KeyRecord, Project, Workspace
from bridge.emulator.state import EmulatorState
from bridge.emulator.switches import OrgLimits

SERVER_VERSION = "0.12.0"


def _ts(value: Any) -> str | None:
    return isoformat(value) if value is not None else None


def key_view(state: EmulatorState, record: KeyRecord) -> dict[str, Any]:
    """``APIKeyGetResponse``: never the key itself, workspace names rather than ids."""
    names = (
        None if record.workspace_ids is None else [ws.name for ws in state.workspaces_for(record)]
    )
    return {
        "id": record.id,
        "short_key": record.short_key,
        "description": record.description,
        "created_at": _ts(record.created_at),
        "read_only": record.role_id == state.role("WORKSPACE_VIEWER").id,
        "last_used_at": _ts(record.last_used_at),
        "expires_at": _ts(record.expires_at),
        "workspace_names": names,
        "default_workspace_name": None,
        "role_id": record.role_id,
        "org_role_id": record.org_role_id,
        "access_scope": record.access_scope,
    }


def pat_view(state: EmulatorState, record: KeyRecord) -> dict[str, Any]:
    """``APIKeyGetResponse`` of a personal access token.

    A PAT acts with its user's permissions, so it has no roles or scope of its own
    (those fields are null); it names its default workspace, and ``revoked_at`` (in no
    spec, but read by clients, API.md §3) says whether it is revoked.
    """
    default = state.workspace(record.default_workspace_id or "")
    return {
        **key_view(state, record),
        "read_only": False,
        "default_workspace_name": default.name if default else None,
        "role_id": None,
        "org_role_id": None,
        "access_scope": None,
        "revoked_at": _ts(record.revoked_at),
    }


def any_key_view(state: EmulatorState, record: KeyRecord) -> dict[str, Any]:
    """``APIKeyGetResponse`` of a service key or a PAT."""
    return pat_view(state, record) if record.kind == "pat" else key_view(state, record)


def created_key_view(state: EmulatorState, record: KeyRecord, key: str) -> dict[str, Any]:
    """``APIKeyCreateResponse``: the one response that carries the full key."""
    return {**any_key_view(state, record), "key": key}


def _permissions(state: EmulatorState, record: KeyRecord) -> list[str]:
    if state.is_org_admin(record):
        return ["organization:manage", "organization:read", "workspaces:manage"]
    if record.org_role_id is not None:
        return ["organization:read"]
    return []


def workspace_view(state: EmulatorState, ws: Workspace, record: KeyRecord) -> dict[str, Any]:
    """``TenantForUser`` as seen by ``record``."""
    role = state.role_by_id(record.role_id)
    return {
        "id": ws.id,
        "organization_id": state.organization_id,
        "created_at": isoformat(ws.created_at),
        "display_name": ws.name,
        "is_personal": False,
        "is_deleted": False,
        "tenant_handle": ws.handle,
        "data_plane_url": None,
        "read_only": record.role_id == state.role("WORKSPACE_VIEWER").id,
        "role_id": record.role_id,
        "role_name": role.display_name if role else None,
        "permissions": None,
    }


def organization_view(state: EmulatorState, record: KeyRecord) -> dict[str, Any]:
    """``Organization``: the required fields and a few useful optional ones."""
    return {
        "id": state.organization_id,
        "display_name": state.seed.organization_name,
        "config": {},
        "connected_to_stripe": False,
        "connected_to_metronome": False,
        "is_personal": False,
        "tier": "enterprise",
        "has_cancelled": False,
        "reached_max_workspaces": False,
        "permissions": _permissions(state, record),
    }


def organization_info_view(
    state: EmulatorState, record: KeyRecord, limits: OrgLimits
) -> dict[str, Any]:
    """``OrganizationInfo``: required fields plus the key-policy settings.

    ``max_api_key_expiry_days`` is the older, undivided cap; it mirrors the service-key
    cap here, which is what a client reading only that field should honour.
    """
    caps = (limits.max_service_key_expiry_days, limits.max_pat_expiry_days)
    return {
        "id": state.organization_id,
        "display_name": state.seed.organization_name,
        "config": {"can_set_api_key_max_expiry": any(cap is not None for cap in caps)},
        "is_personal": False,
        "tier": "enterprise",
        "permissions": _permissions(state, record),
        "disabled": False,
        "member_disabled": False,
        "pat_creation_disabled": False,
        "max_api_key_expiry_days": limits.max_service_key_expiry_days,
        "max_pat_expiry_days": limits.max_pat_expiry_days,
        "max_service_key_expiry_days": limits.max_service_key_expiry_days,
    }


def project_view(project: Project) -> dict[str, Any]:
    """``TracerSession``, with the fields the SDK's model needs (even when null)."""
    return {
        "id": project.id,
        "tenant_id": project.tenant_id,
        "name": project.name,
        "description": project.description,
        "start_time": isoformat(project.start_time),
        "end_time": None,
        "extra": {"metadata": {}},
        "default_dataset_id": None,
        "reference_dataset_id": None,
        "trace_tier": "longlived",
        "run_count": 0,
        "latency_p50": None,
        "latency_p99": None,
        "first_token_p50": None,
        "first_token_p99": None,
        "total_tokens": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_cost": None,
        "prompt_cost": None,
        "completion_cost": None,
        "last_run_start_time": None,
        "feedback_stats": None,
        "session_feedback_stats": None,
        "run_facets": None,
        "error_rate": None,
        "streaming_rate": None,
        "test_run_number": None,
    }


def info_view() -> dict[str, Any]:
    """``InfoGetResponse``, advertising what makes the SDK trace the way it does on SaaS.

    The SDK reads ``batch_ingest_config`` (``use_multipart_endpoint`` sends runs to
    ``POST /runs/multipart``; the size and thread limits shape its batches) and
    ``instance_flags.zstd_compression_enabled`` (compress those batches with zstd,
    offered only when the emulator can decode them; without it the SDK logs a warning
    once and sends them plain).
    """
    return {
        "version": SERVER_VERSION,
        "git_sha": None,
        "license_expiration_time": None,
        "batch_ingest_config": {
            "use_multipart_endpoint": True,
            "scale_up_qsize_trigger": 1000,
            "scale_up_nthreads_limit": 16,
            "scale_down_nempty_trigger": 4,
            "size_limit": 100,
            "size_limit_bytes": 20971520,
        },
        "instance_flags": {"emulator": True, "zstd_compression_enabled": zstd_available()},
        "customer_info": None,
    }
