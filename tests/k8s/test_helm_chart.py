"""The Kubernetes path, validated offline: the Helm chart, the example manifests, the Dockerfile.

The chart in ``infra/k8s/langsmith-bridge`` is rendered by Helm v4 itself, through the
``helm-python-sdk`` wheel (``helm_python``: Helm's Go SDK behind a C ABI, no binary, no cluster),
for several value sets. Every rendered object and every example manifest is then validated
against the Kubernetes OpenAPI schemas that ``kubernetes-validate`` ships, in strict mode
(unknown fields fail), and the settings that matter are asserted: the CronJob never overlaps,
sharding is an Indexed Job whose pods run ``--shard $(JOB_COMPLETION_INDEX)/N``, every pod meets
the restricted Pod Security Standard, the config comes from a ConfigMap and the admin key from a
Secret, the ServiceAccount carries its cloud identity, and the Deployment is probed and served.
The Dockerfile is read line by line (there is no docker daemon here).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from bridge.cli import _parser as cli_parser
from bridge.config import load_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "infra/k8s/langsmith-bridge"
EXAMPLES = ROOT / "infra/k8s/examples"
DOCKERFILE = ROOT / "Dockerfile"
KUBE_VERSION = "1.31.0"
RELEASE = "langsmith-bridge"
NAMESPACE = "bridge"
CONFIG_PATH = "/etc/langsmith-bridge/bridge.toml"

IRSA = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/langsmith-bridge"}
GKE = {"iam.gke.io/gcp-service-account": "langsmith-bridge@my-project.iam.gserviceaccount.com"}

# Kinds of CRDs the examples use: their schemas are not Kubernetes', so only their shape is read.
CRD_GROUPS = {"external-secrets.io"}

Manifest = dict[str, Any]

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "deployment": {
        "mode": "deployment",
        "serve": {"tokenSecret": "langsmith-bridge-token"},
        "podDisruptionBudget": {"enabled": True},
    },
    "sharded": {"sharding": {"enabled": True, "shards": 4}, "persistence": {"enabled": False}},
    "irsa": {"serviceAccount": {"annotations": IRSA}},
    "gke": {"serviceAccount": {"annotations": GKE, "automountToken": True}},
    "extras": {
        "existingConfigMap": "my-bridge-config",
        "persistence": {"existingClaim": "bridge-state"},
        "imagePullSecrets": [{"name": "regcred"}],
        "extraEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}],
        "podAnnotations": {"example.com/team": "platform"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "tools", "operator": "Exists", "effect": "NoSchedule"}],
        "cronjob": {"timeZone": "Europe/Paris"},
    },
}


def render(values: dict[str, Any]) -> list[Manifest]:
    """The chart's objects for ``values``, as ``helm template`` would print them."""
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {name: render(values) for name, values in VALUE_SETS.items()}


def one(objects: list[Manifest], kind: str) -> Manifest:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {[o['kind'] for o in objects]}"
    return found[0]


def pod_specs(objects: list[Manifest]) -> Iterator[Manifest]:
    for obj in objects:
        if obj["kind"] == "CronJob":
            yield obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif obj["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            yield obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield obj["spec"]


def bridge_container(objects: list[Manifest]) -> Manifest:
    (spec,) = pod_specs(objects)
    (container,) = spec["containers"]
    return container


def validation_errors(obj: Manifest) -> list[str]:
    """Why kubernetes-validate (strict) rejects ``obj``; empty when it passes."""
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        return [f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        if obj["apiVersion"].split("/")[0] not in CRD_GROUPS:
            return [f"{obj['kind']} {obj['apiVersion']}: no Kubernetes schema"]
        if not obj.get("metadata", {}).get("name") or not isinstance(obj.get("spec"), dict):
            return [f"{obj['kind']}: a custom resource needs metadata.name and a spec"]
    return []


def restricted_violations(spec: Manifest) -> list[str]:
    """What in a pod spec breaks the restricted Pod Security Standard as this chart sets it."""
    problems: list[str] = []
    pod = spec.get("securityContext", {})
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    for container in spec.get("initContainers", []) + spec["containers"]:
        ctx = container.get("securityContext", {})
        name = container["name"]
        if ctx.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities.drop is not [ALL]")
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
    return problems


# --- the chart --------------------------------------------------------------------------------


def test_every_rendered_object_is_valid_kubernetes(rendered: dict[str, list[Manifest]]) -> None:
    problems = [
        f"{name}: {error}"
        for name, objects in rendered.items()
        for obj in objects
        for error in validation_errors(obj)
    ]
    assert problems == []


def test_helm_lint_finds_nothing() -> None:
    report = helm_python.lint(CHART, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_the_default_is_a_cronjob_that_never_overlaps(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["defaults"]
    assert {o["kind"] for o in objects} == {
        "ConfigMap",
        "CronJob",
        "PersistentVolumeClaim",
        "ServiceAccount",
    }
    spec = one(objects, "CronJob")["spec"]
    assert spec["schedule"] == "*/15 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 0
    assert job["activeDeadlineSeconds"] > 0
    assert "completionMode" not in job
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    assert bridge_container(objects)["args"] == [
        "-c",
        CONFIG_PATH,
        "--log-format",
        "json",
        "--log-level",
        "info",
        "run",
    ]


def test_sharding_is_one_indexed_job_of_n_pods(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["sharded"]
    job = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == 4
    assert job["parallelism"] == 4
    args = bridge_container(objects)["args"]
    assert args[args.index("run") :] == ["run", "--shard", "$(JOB_COMPLETION_INDEX)/4"]
    (spec,) = pod_specs(objects)
    state = next(v for v in spec["volumes"] if v["name"] == "state")
    assert "emptyDir" in state
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]


def test_every_pod_meets_the_restricted_pod_security_standard(
    rendered: dict[str, list[Manifest]],
) -> None:
    for name, objects in rendered.items():
        for spec in pod_specs(objects):
            assert restricted_violations(spec) == [], name
            pod = spec["securityContext"]
            assert pod["runAsNonRoot"] is True
            assert pod["runAsUser"] == 10001
            assert pod["fsGroup"] == 10001
            tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
            assert "emptyDir" in tmp
            mounts = {m["mountPath"]: m["name"] for m in bridge_container(objects)["volumeMounts"]}
            assert mounts["/tmp"] == "tmp"


def test_config_is_mounted_from_a_configmap_and_the_key_from_a_secret(
    rendered: dict[str, list[Manifest]],
) -> None:
    for name, objects in rendered.items():
        (spec,) = pod_specs(objects)
        container = bridge_container(objects)
        config = next(v for v in spec["volumes"] if v["name"] == "config")
        expected = "my-bridge-config" if name == "extras" else RELEASE
        assert config["configMap"]["name"] == expected, name
        mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
        assert (mount["mountPath"], mount["subPath"], mount["readOnly"]) == (
            CONFIG_PATH,
            "bridge.toml",
            True,
        )
        env = {e["name"]: e for e in container["env"]}
        assert env["LANGSMITH_ADMIN_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "langsmith-admin-key",
            "key": "api-key",
        }
        assert "value" not in env["LANGSMITH_ADMIN_KEY"]
    configmaps = [o for o in rendered["extras"] if o["kind"] == "ConfigMap"]
    assert configmaps == []


def test_the_default_config_is_one_the_bridge_accepts(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    text = one(rendered["defaults"], "ConfigMap")["data"]["bridge.toml"]
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    config = load_config(path, environ={})
    assert 'admin_key_env = "LANGSMITH_ADMIN_KEY"' in text
    assert config.state.backend == "file"
    # serve --every (and the cron schedule) must not be slower than run.every
    assert config.run.every.total_seconds() == 15 * 60
    state_path = Path(str(config.state.path))
    assert state_path.is_relative_to("/var/lib/langsmith-bridge")


def test_the_container_args_are_ones_the_cli_accepts(
    rendered: dict[str, list[Manifest]],
) -> None:
    """The image's entrypoint is ``langsmith-bridge``; the args go through its real parser
    (global options before the command), with ``$(JOB_COMPLETION_INDEX)`` as the kubelet
    expands it."""
    for name, objects in rendered.items():
        args = [
            a.replace("$(JOB_COMPLETION_INDEX)", "2") for a in bridge_container(objects)["args"]
        ]
        parsed = cli_parser().parse_args(args)
        assert parsed.main_config == CONFIG_PATH, name
        assert parsed.log_format == "json", name
        assert parsed.command == ("serve" if name == "deployment" else "run"), name
    sharded = cli_parser().parse_args(
        [
            a.replace("$(JOB_COMPLETION_INDEX)", "3")
            for a in bridge_container(rendered["sharded"])["args"]
        ]
    )
    assert sharded.shard == (3, 4)


def test_service_account_carries_the_cloud_identity(
    rendered: dict[str, list[Manifest]],
) -> None:
    for name, wanted, automount in (("irsa", IRSA, False), ("gke", GKE, True)):
        account = one(rendered[name], "ServiceAccount")
        assert account["metadata"]["annotations"] == wanted
        assert account["automountServiceAccountToken"] is automount
        (spec,) = pod_specs(rendered[name])
        assert spec["serviceAccountName"] == account["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is automount
    assert "annotations" not in one(rendered["defaults"], "ServiceAccount")["metadata"]


def test_deployment_mode_serves_and_is_probed(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["deployment"]
    assert {o["kind"] for o in objects} >= {"Deployment", "Service", "PodDisruptionBudget"}
    assert not [o for o in objects if o["kind"] == "CronJob"]
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    container = bridge_container(objects)
    args = container["args"]
    assert args[args.index("serve") :] == [
        "serve",
        "--host",
        "0.0.0.0",  # noqa: S104 (the pod's own interfaces)
        "--port",
        "8080",
        "--every",
        "15m",
        "--token-file",
        "/etc/langsmith-bridge/token/token",
    ]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    (spec,) = pod_specs(objects)
    token = next(v for v in spec["volumes"] if v["name"] == "token")
    assert token["secret"]["secretName"] == "langsmith-bridge-token"
    assert token["secret"]["items"] == [{"key": "token", "path": "token"}]
    service = one(objects, "Service")["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_deployment_without_a_pdb_by_default() -> None:
    objects = render({"mode": "deployment", "serve": {"tokenSecret": "t"}})
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]


def test_image_tag_defaults_to_the_app_version() -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert bridge_container(render({}))["image"] == f"langsmith-bridge:{app_version}"
    pinned = render({"image": {"repository": "registry.example.com/lsb", "tag": "1.2.3"}})
    assert bridge_container(pinned)["image"] == "registry.example.com/lsb:1.2.3"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "daemon"}, "mode must be cronjob or deployment"),
        ({"mode": "deployment", "sharding": {"enabled": True}}, "sharding.enabled needs"),
        ({"adminKey": {"existingSecret": ""}}, "adminKey.existingSecret"),
        # serve refuses to bind beyond loopback without --token-file
        ({"mode": "deployment"}, "mode: deployment needs serve.tokenSecret"),
    ],
)
def test_unworkable_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render(values)


def test_a_weakened_security_setting_is_caught() -> None:
    """The checks above can fail: a chart user who turns the restricted settings off is seen."""
    objects = render({"securityContext": {"readOnlyRootFilesystem": False}})
    (spec,) = pod_specs(objects)
    assert restricted_violations(spec) == ["bridge: readOnlyRootFilesystem is not true"]
    broken = render({"podSecurityContext": {"seccompProfile": None}})
    (spec,) = pod_specs(broken)
    assert "pod seccompProfile is not RuntimeDefault" in restricted_violations(spec)


# --- the examples -----------------------------------------------------------------------------


def example_objects() -> list[Manifest]:
    return [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def test_examples_are_valid_kubernetes() -> None:
    objects = example_objects()
    assert len(objects) >= 3
    assert [e for obj in objects for e in validation_errors(obj)] == []
    for obj in objects:
        for spec in pod_specs([obj]):
            assert restricted_violations(spec) == [], obj["metadata"]["name"]


def test_reloader_example_rolls_on_the_synced_secret() -> None:
    text = (EXAMPLES / "consumer-reloader.yaml").read_text()
    (deployment,) = yaml.safe_load_all(text)
    annotations = deployment["metadata"]["annotations"]
    assert annotations["secret.reloader.stakater.com/reload"] == "langsmith"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"secretRef": {"name": "langsmith"}} in container["envFrom"]
    (external,) = yaml.safe_load_all((EXAMPLES / "external-secret.yaml").read_text())
    assert external["spec"]["target"]["name"] == "langsmith"


def test_ack_sidecar_posts_the_mounted_key_every_minute() -> None:
    (deployment,) = yaml.safe_load_all((EXAMPLES / "consumer-ack-sidecar.yaml").read_text())
    spec = deployment["spec"]["template"]["spec"]
    sidecar = next(c for c in spec["containers"] if c["name"] == "ack")
    assert sidecar["image"].startswith("curlimages/curl:")
    script = sidecar["command"][-1]
    assert "http://langsmith-bridge:8080/v1/ack" in script
    assert '-H "X-API-Key: $(cat /secrets/LANGSMITH_API_KEY)"' in script
    assert '"policy":"tracing-prod","consumer":"api","replica":"\'$HOSTNAME\'"' in script
    assert "sleep 60" in script
    mount = next(m for m in sidecar["volumeMounts"] if m["mountPath"] == "/secrets")
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "langsmith"


# --- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    pairs: list[tuple[str, str]] = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, arguments = stripped.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, arguments in dockerfile_instructions(text):
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, arguments))
    return stages


def dockerfile_problems(text: str) -> list[str]:
    stages = dockerfile_stages(text)
    if len(stages) < 2:
        return ["fewer than two FROM stages"]
    problems: list[str] = []
    final = stages[-1]
    users = [arguments for instruction, arguments in final if instruction == "USER"]
    user = users[-1].split(":")[0] if users else "root"
    if not user.isdigit() or int(user) == 0:
        problems.append(f"final stage runs as {user!r}, not a non-root numeric uid")
    for instruction, arguments in final:
        if instruction == "RUN" and re.search(
            r"apt-get\s+install.*\b(build-essential|gcc|g\+\+|make)\b", arguments
        ):
            problems.append(f"final stage installs build tools: {arguments}")
    entrypoints = [arguments for instruction, arguments in final if instruction == "ENTRYPOINT"]
    if not entrypoints or entrypoints[-1] != '["langsmith-bridge"]':
        problems.append(f"ENTRYPOINT is {entrypoints[-1:]}, not langsmith-bridge")
    return problems


def test_dockerfile_is_multi_stage_non_root_and_runs_the_bridge() -> None:
    text = DOCKERFILE.read_text()
    assert dockerfile_problems(text) == []
    stages = dockerfile_stages(text)
    assert all(s[0][1].startswith("python:3.11-slim") for s in stages)
    final = dict(stages[-1])
    assert final["USER"].startswith("10001")
    assert final["CMD"] == '["run"]'
    assert "COPY --from=builder /opt/venv /opt/venv" in [
        f"COPY {a}" for i, a in stages[-1] if i == "COPY"
    ]
    assert "[aws,vault,gcp,serve]" in " ".join(a for i, a in stages[0] if i == "RUN")
    env = " ".join(a for i, a in stages[-1] if i == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    labels = " ".join(a for i, a in stages[-1] if i == "LABEL")
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t.replace("USER 10001:10001", "USER root"), "not a non-root numeric uid"),
        (lambda t: t.replace("USER 10001:10001\n", ""), "not a non-root numeric uid"),
        (
            lambda t: t.replace("WORKDIR /tmp\n", "RUN apt-get install -y gcc\n"),
            "installs build tools",
        ),
        (lambda t: t.replace('ENTRYPOINT ["langsmith-bridge"]', 'ENTRYPOINT ["sh"]'), "ENTRYPOINT"),
        (lambda t: t.split("FROM python:3.11-slim AS runtime")[0], "fewer than two FROM"),
    ],
)
def test_dockerfile_checks_catch_a_regression(edit: Callable[[str], str], problem: str) -> None:
    broken = edit(DOCKERFILE.read_text())
    assert any(problem in p for p in dockerfile_problems(broken))
