"""deploy/kubernetes: every overlay renders (`kubectl kustomize`), every object it renders is
valid against Kubernetes' own schemas (strict: a misspelt field fails), and the shape is the one
the README promises: probes on /readyz and /healthz, two of web, worker, beat and the panel
receiver spread over nodes, a budget for each, migrations as a Job, settings the project reads."""

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .test_compose import settings_variables

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("production", "staging")
# The oldest Kubernetes still maintained when these manifests were written.
KUBERNETES_VERSION = "1.32"
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def rendered(target: str) -> list[dict]:
    result = subprocess.run([KUBECTL, "kustomize", str(KUSTOMIZE / target)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("target", ["base", *(f"overlays/{name}" for name in OVERLAYS)])
def test_every_object_is_valid_against_the_kubernetes_schemas(target):
    objects = rendered(target)

    assert objects
    for found in objects:
        kubernetes_validate.validate(found, KUBERNETES_VERSION, strict=True)


def test_web_is_taken_into_the_load_balancer_by_readyz_and_restarted_by_healthz():
    web = by_kind(rendered("base"), "Deployment")["alarmbroker-web"]
    (container,) = web["spec"]["template"]["spec"]["containers"]

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_two_of_each_part_that_must_survive_a_node_spread_over_nodes_with_a_budget():
    objects = rendered("overlays/production")
    deployments = by_kind(objects, "Deployment")
    budgets = by_kind(objects, "PodDisruptionBudget")

    for name in ("web", "worker", "beat", "sia"):
        deployment = deployments[f"alarmbroker-{name}"]
        assert deployment["spec"]["replicas"] >= 2, name
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "kubernetes.io/hostname", name
        assert budgets[f"alarmbroker-{name}"]["spec"]["minAvailable"] == 1, name


def test_migrations_run_as_a_job_and_every_process_runs_unprivileged_from_one_image():
    objects = rendered("overlays/production")
    job = by_kind(objects, "Job")["alarmbroker-migrate"]
    pods = [job, *by_kind(objects, "Deployment").values()]

    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == [
        "migrate", "--noinput"]  # fmt: skip
    for pod in pods:
        spec = pod["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # the image's user (Dockerfile)
        (container,) = spec["containers"]
        assert container["image"] == "registry.example.org/alarmbroker:1.0.0"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "var", "mountPath": "/app/var"} in container["volumeMounts"]


def test_the_settings_are_ones_the_project_reads_and_secrets_stay_in_the_secret():
    objects = rendered("overlays/staging")
    settings = by_kind(objects, "ConfigMap")["alarmbroker-settings"]["data"]
    secret = by_kind(objects, "Secret")["alarmbroker-secrets"]

    assert set(settings) <= settings_variables()
    assert not {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} & set(settings)
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= set(secret["data"])


def test_the_image_runs_as_the_user_the_manifests_name():
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "--uid 10001" in dockerfile and "USER 10001" in dockerfile
