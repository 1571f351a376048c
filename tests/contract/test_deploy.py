"""deploy/: every kustomization renders, every object validates against the Kubernetes schemas, and the
manifests agree with what the Dockerfile and `imgdiff-rt triton-repo` produce (read from them, not restated)."""

import copy
import re

import pytest

from imgdiff_rt.triton.repository import write_repository

import kustomize_lite

from helpers import ROOT

kubernetes_validate = pytest.importorskip("kubernetes_validate")

DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
DOCKERFILE = (ROOT / "Dockerfile").read_text()
K8S_VERSION = "1.30.0"  # the oldest Kubernetes these manifests are for (autoscaling/v2, restricted pods)


def _pod(objects):
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    return deployment, deployment["spec"]["template"]["spec"]


def _triton(pod):
    return next(c for c in pod["containers"] if c["name"] == "triton")


@pytest.fixture(scope="module")
def rendered():
    return {k.relative_to(DEPLOY).as_posix(): kustomize_lite.render(k) for k in KUSTOMIZATIONS}


def test_there_is_a_base_and_an_object_storage_overlay(rendered):
    assert set(rendered) == {"base", "overlays/object-storage"}


@pytest.mark.parametrize("name", ["base", "overlays/object-storage"])
def test_every_object_validates(rendered, name):
    kinds = []
    for obj in rendered[name]:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        kinds.append(obj["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= set(kinds)


def test_a_broken_object_fails_validation(rendered):
    deployment, pod = _pod(copy.deepcopy(rendered["base"]))
    _triton(pod)["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def _dockerfile_facts() -> dict:
    expose = sorted(int(p) for p in re.search(r"^EXPOSE (.+)$", DOCKERFILE, re.M).group(1).split())
    check = re.search(r"^\s+CMD (.+?)(?: \|\| exit 1)?$", DOCKERFILE, re.M).group(1)  # the HEALTHCHECK's
    return {"expose": expose, "health_check": check,
            "health_port": int(re.search(r"--url [\w.]+:(\d+)", check).group(1)),
            "uid": int(re.search(r"useradd .*--uid (\d+)", DOCKERFILE).group(1)),
            "repo": re.search(r"IMGDIFF_RT_REPO=(\S+)", DOCKERFILE).group(1)}


@pytest.mark.parametrize("name", ["base", "overlays/object-storage"])
def test_ports_probes_user_and_repository_match_the_dockerfile(rendered, name):
    facts = _dockerfile_facts()
    deployment, pod = _pod(rendered[name])
    triton = _triton(pod)
    ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
    assert sorted(ports.values()) == facts["expose"]
    # Triton's defaults, in the order the Dockerfile exposes them: HTTP, gRPC, metrics
    assert [ports["http"], ports["grpc"], ports["metrics"]] == facts["expose"]
    assert ports["http"] == facts["health_port"]
    ready = " ".join(triton["readinessProbe"]["exec"]["command"])
    assert f"http://127.0.0.1:{ports['http']}/v2/health/ready" in ready  # Triton's own readiness ...
    assert facts["health_check"] in ready  # ... and the image's health check (stubs alive, broken ones reloaded)
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    template = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(template["prometheus.io/port"]) == ports["metrics"]
    assert pod["securityContext"]["runAsUser"] == facts["uid"] and pod["securityContext"]["runAsNonRoot"]
    env = {e["name"]: e["value"] for e in triton["env"]}
    mounts = {m["name"]: m["mountPath"] for m in triton["volumeMounts"]}
    assert env["IMGDIFF_RT_REPO"] == facts["repo"] == mounts["model-repo"]
    filler = pod["initContainers"][0]
    assert {m["name"]: m["mountPath"] for m in filler["volumeMounts"]}["model-repo"] == facts["repo"]
    volumes = {v["name"] for v in pod["volumes"]}
    assert all(m["name"] in volumes for c in pod["containers"] + pod["initContainers"] for m in c["volumeMounts"])


def test_startup_probe_waits_for_the_ensemble_triton_repo_writes(rendered, tmp_path):
    written = write_repository(tmp_path / "repo", None, weights=False)
    _, pod = _pod(rendered["base"])
    path = _triton(pod)["startupProbe"]["httpGet"]["path"]
    model = re.fullmatch(r"/v2/models/(\w+)/ready", path).group(1)
    assert model in written
    assert 'platform: "ensemble"' in (tmp_path / "repo" / model / "config.pbtxt").read_text()


@pytest.mark.parametrize("name", ["base", "overlays/object-storage"])
def test_every_container_is_unprivileged_and_bounded(rendered, name):
    _, pod = _pod(rendered[name])
    for c in pod["containers"] + pod["initContainers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(c["resources"]["limits"]) and {"cpu", "memory"} <= set(c["resources"]["requests"])
    gpu = _triton(pod)["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == gpu["requests"]["nvidia.com/gpu"] == "1"


def test_service_and_autoscaler_point_at_the_server(rendered):
    objects = rendered["base"]
    deployment, pod = _pod(objects)
    service = next(o for o in objects if o["kind"] == "Service")
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    named = {p["name"] for p in _triton(pod)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == named == {"http", "grpc", "metrics"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}


def test_object_storage_overlay_replaces_the_volume(rendered):
    objects = rendered["overlays/object-storage"]
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    _, pod = _pod(objects)
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    assert pod["initContainers"][0]["args"][:2] == ["s3", "sync"]


def test_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(kustomize_lite.Unsupported, match="namePrefix"):
        kustomize_lite.render(tmp_path)
