"""`course hub render`'s grading cluster and network policies: valid against their published
schemas (the Dask operator's CRDs, Kubernetes' NetworkPolicy), and the walls hold: what each
pod may see, reach and use, and which image it runs."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from autograder.course.config import Course, load_course
from autograder.hosting import grading_cluster, k8s, render

ROOT = Path(__file__).resolve().parents[2]
HUB = ROOT / "hub"
CRD_FILES = {"DaskCluster": HUB / "dask-kubernetes" / "daskcluster.crd.yaml",
             "DaskWorkerGroup": HUB / "dask-kubernetes" / "daskworkergroup.crd.yaml"}
NETWORK_POLICY_SCHEMA = HUB / "kubernetes" / "networkpolicy-networking-v1.schema.json"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


@pytest.fixture(scope="module")
def course() -> Course:
    return load_course(ROOT)


def _documents(course: Course, name: str) -> list[dict[str, Any]]:
    """The documents of one rendered file, read back from its text (what `kubectl apply` reads)."""
    return list(yaml.safe_load_all(render.render_texts(course)[name]))


@pytest.fixture(scope="module")
def cluster(course) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in _documents(course, "grading-cluster.yaml")}


@pytest.fixture(scope="module")
def policies(course) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in _documents(course, "networkpolicy.yaml")}


@pytest.fixture(scope="module")
def pods(cluster) -> dict[str, dict[str, Any]]:
    """Each kind of pod the operator will create -> its pod spec."""
    spec = cluster["DaskCluster"]["spec"]
    return {"scheduler": spec["scheduler"]["spec"], "cpu workers": spec["worker"]["spec"],
            "gpu workers": cluster["DaskWorkerGroup"]["spec"]["worker"]["spec"]}


def _crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILES[kind].read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["served"]]
    return version["schema"]["openAPIV3Schema"]


def strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it with strict field validation (kubectl's
    default): an object of a structural schema holds its ``properties`` and nothing else, unless
    it is a map (``additionalProperties``) or says ``x-kubernetes-preserve-unknown-fields``.
    Plain JSON Schema lets unknown keys through, so a misspelt field would pass unseen."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) if k in ("items", "additionalProperties", "anyOf", "allOf", "oneOf")
           else v for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
    open_map = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
    if schema.get("type") == "object" and not open_map:
        out["additionalProperties"] = False
    return out


def _crd_errors(doc: dict[str, Any], *, strict_fields: bool = True) -> list[str]:
    """What the API server would refuse in ``doc`` (its body: apiVersion, kind and metadata are
    the server's own, checked by :func:`test_cluster_manifests_pass_the_operators_crds`)."""
    schema = _crd_schema(doc["kind"])
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    validator = jsonschema.Draft7Validator(strict(schema) if strict_fields else schema)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(body)]


def _containers(pods: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{kind}/{c['name']}": c for kind, pod in pods.items() for c in pod["containers"]}


def test_cluster_manifests_pass_the_operators_crds(cluster):
    """Would the API server, with the Dask operator's CRDs installed, accept both resources?"""
    assert set(cluster) == set(CRD_FILES)
    for kind, doc in cluster.items():
        crd = yaml.safe_load(CRD_FILES[kind].read_text())
        served = {f"{crd['spec']['group']}/{v['name']}" for v in crd["spec"]["versions"] if v["served"]}
        assert doc["apiVersion"] in served and doc["kind"] == crd["spec"]["names"]["kind"]
        assert DNS_LABEL.match(doc["metadata"]["name"])
        assert _crd_errors(doc) == []


def test_the_crd_check_catches_a_misspelt_field(cluster):
    """Is the CRD check real: does a misspelt field fail it, though plain JSON Schema would not?"""
    for path in (HUB / "dask-kubernetes").glob("*.yaml"):  # strictness is the server's, not ours
        assert "x-kubernetes-preserve-unknown-fields" not in path.read_text()
    bad = copy.deepcopy(cluster["DaskCluster"])
    pod = bad["spec"]["worker"]["spec"]
    pod["automountServiceAcountToken"] = pod.pop("automountServiceAccountToken")
    assert _crd_errors(bad, strict_fields=False) == []
    assert _crd_errors(bad) == ["spec/worker/spec: Additional properties are not allowed "
                                "('automountServiceAcountToken' was unexpected)"]
    bad = copy.deepcopy(cluster["DaskWorkerGroup"])
    bad["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = 1
    assert _crd_errors(bad) == ["spec/worker/spec/containers/0/resources/limits/nvidia.com/gpu: "
                                "1 is not of type 'string'"]


def test_network_policies_pass_the_kubernetes_schema(policies):
    """Does each policy validate against Kubernetes' own NetworkPolicy schema, which refuses a
    misspelt field?"""
    schema = json.loads(NETWORK_POLICY_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    for policy in policies.values():
        assert list(validator.iter_errors(policy)) == []
    bad = copy.deepcopy(policies["course-grading-workers"])
    bad["spec"]["egres"] = bad["spec"].pop("egress")
    assert [e.message for e in validator.iter_errors(bad)] == [
        "Additional properties are not allowed ('egres' was unexpected)"]


def test_the_hidden_data_is_mounted_only_into_the_workers(pods, course):
    """Do the workers, and only they, mount the grader's claim (hidden split, keys, rubric,
    solutions), read-only, where the grader looks for each? Never the scheduler, never a user pod."""
    expected = {str(path): sub for sub, path in grading_cluster.grader_only_paths(course.config).items()}
    assert str(grading_cluster.grader_only_paths(course.config)["hidden"]).endswith(
        course.config.dataset.hidden_dir)
    for kind in ("cpu workers", "gpu workers"):
        (container,) = pods[kind]["containers"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"] if m["name"] == k8s.GRADER_CLAIM}
        assert {path: m["subPath"] for path, m in mounts.items()} == expected
        assert all(m["readOnly"] for m in mounts.values())
        (claim,) = [v for v in pods[kind]["volumes"] if v["name"] == k8s.GRADER_CLAIM]
        assert claim["persistentVolumeClaim"]["readOnly"] is True
    assert k8s.GRADER_CLAIM not in json.dumps(pods["scheduler"])
    values = render.render_texts(course)["values.yaml"]
    assert k8s.GRADER_CLAIM not in values and k8s.STATE_CLAIM not in values
    user_mounts = yaml.safe_load(values)["singleuser"]["storage"]["extraVolumeMounts"]
    assert not {m["mountPath"] for m in user_mounts} & set(expected)


def test_gpus_are_requested_only_by_the_gpu_workers(pods, course):
    """Do only GPU workers request nvidia.com/gpu, and advertise the Dask resource GPU=1?"""
    for name, container in _containers(pods).items():
        gpu = name.startswith("gpu workers")
        resources = container["resources"]
        assert ("nvidia.com/gpu" in resources["limits"]) is gpu, name
        assert ("nvidia.com/gpu" in resources["requests"]) is gpu, name
        args = " ".join(container.get("args", []))
        assert ("--resources GPU=1" in args) is gpu, name
    gpu_limits = pods["gpu workers"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == str(course.config.hub.gpu_limit)


def test_requests_equal_limits_in_every_container(pods, course):
    """Is nothing overcommitted while grading, and is a worker's memory above the kernel's own
    limit (so the kit's limit fires first, with partial credit)?"""
    for name, container in _containers(pods).items():
        resources = container["resources"]
        assert resources["requests"] == resources["limits"], name
        assert {"cpu", "memory"} <= set(resources["limits"]), name
    worker_mb = int(pods["cpu workers"]["containers"][0]["resources"]["limits"]["memory"][:-2])
    assert worker_mb > course.config.limits.memory_mb


def test_no_pod_gets_a_token_service_links_or_a_writable_root(pods):
    for kind, pod in pods.items():
        assert pod["automountServiceAccountToken"] is False, kind
        assert pod["enableServiceLinks"] is False, kind
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, kind


def test_the_scheduler_runs_with_no_privilege(pods):
    """Is the scheduler locked down as the per-submission Job was (non-root, no capability,
    no escalation, seccomp)?"""
    pod = pods["scheduler"]
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True and sc["runAsNonRoot"] is True
    assert sc["runAsUser"] != 0 and sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == {"tmp", grading_cluster.TLS_VOLUME}  # scratch, and its certificate
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}


def test_every_dask_peer_speaks_tls_with_the_course_certificate(pods, course):
    """A pod that reaches the scheduler despite the network policies could otherwise submit work
    that runs as root on the workers, or join as a worker and hand back grades. Do the scheduler
    and both worker groups present and require the course's certificate (the Secret, mounted
    read-only), does the scheduler listen with TLS alone and do the workers dial tls://, and
    is the Secret named nowhere else (no user pod)?"""
    tls_args = ["--tls-ca-file", f"{k8s.DASK_TLS_MOUNT}/ca.pem", "--tls-cert",
                f"{k8s.DASK_TLS_MOUNT}/node.pem", "--tls-key", f"{k8s.DASK_TLS_MOUNT}/node-key.pem"]
    for kind, pod in pods.items():
        (container,) = pod["containers"]
        args = container["args"]
        assert any(args[i:i + len(tls_args)] == tls_args for i in range(len(args))), kind
        (volume,) = [v for v in pod["volumes"] if v.get("secret")]
        assert volume["secret"]["secretName"] == k8s.DASK_TLS_SECRET, kind
        assert volume["secret"]["defaultMode"] == 0o440, kind
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert mount == {"name": volume["name"], "mountPath": str(k8s.DASK_TLS_MOUNT),
                         "readOnly": True}, kind
        if kind == "scheduler":
            assert args[args.index("--protocol") + 1] == "tls"
            # 0440: readable by the scheduler's uid through its fsGroup, by no other uid.
            assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
        else:
            assert args[0] == k8s.scheduler_address() and args[0].startswith("tls://"), kind
    texts = render.render_texts(course)
    assert "tcp://" not in texts["grading-cluster.yaml"]
    assert [name for name, text in texts.items() if k8s.DASK_TLS_SECRET in text] == \
        ["grading-cluster.yaml"]


def test_workers_are_privileged_only_for_the_sandbox_and_say_why(pods):
    """Do the workers get exactly what the kit's sandbox needs, and does hub/README.md say why?"""
    for kind in ("cpu workers", "gpu workers"):
        (container,) = pods[kind]["containers"]
        assert container["securityContext"] == grading_cluster.WORKER_SECURITY
        assert container["command"] == ["tini", "--", str(k8s.GRADING_WORKER_SCRIPT)]
        writable = {m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert writable == {"tmp", "run", grading_cluster.WORKER_STATE}
        assert grading_cluster.WORKER_PRELOAD in container["args"]  # refuses a copy that cannot grade
        assert k8s.STATE_CLAIM not in {m["name"] for m in container["volumeMounts"]}  # results come back as data
    readme = (HUB / "README.md").read_text()
    for reason in ("privileged", "user namespaces", "setpriv", "cgroup", "user.max_user_namespaces"):
        assert reason in readme


def test_workers_reach_only_the_scheduler(policies, cluster):
    """May a worker open connections to the scheduler's comm port and DNS only, and accept
    them from the scheduler only?"""
    policy = policies["course-grading-workers"]["spec"]
    scheduler = {"podSelector": {"matchLabels": k8s.SCHEDULER_PODS}}
    assert policy["podSelector"] == {"matchLabels": k8s.WORKER_PODS}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"from": [scheduler]}]
    to_scheduler, to_dns = policy["egress"]
    assert to_scheduler == {"to": [scheduler], "ports": [{"protocol": "TCP", "port": k8s.SCHEDULER_PORT}]}
    assert {p["port"] for p in to_dns["ports"]} == {53}
    assert to_dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    service = cluster["DaskCluster"]["spec"]["scheduler"]["service"]
    assert service["selector"] == k8s.SCHEDULER_PODS
    assert [p["port"] for p in service["ports"]] == [k8s.SCHEDULER_PORT]


def test_the_scheduler_is_reached_only_by_workers_and_the_grading_service(policies):
    policy = policies["course-grading-scheduler"]["spec"]
    assert policy["podSelector"] == {"matchLabels": k8s.SCHEDULER_PODS}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["from"] == [{"podSelector": {"matchLabels": k8s.WORKER_PODS}},
                               {"podSelector": {"matchLabels": k8s.SERVICE_LABELS}}]
    assert ingress["ports"] == [{"protocol": "TCP", "port": k8s.SCHEDULER_PORT}]
    assert policy["egress"] == [{"to": [{"podSelector": {"matchLabels": k8s.WORKER_PODS}}]}]


def test_the_policies_select_the_pods_the_operator_makes(cluster):
    """Do the selectors match the labels the operator puts on this cluster's pods (its
    ``dask.org/*`` labels, with the cluster's name), for both worker groups?"""
    name = cluster["DaskCluster"]["metadata"]["name"]
    assert cluster["DaskWorkerGroup"]["spec"]["cluster"] == name
    assert k8s.WORKER_PODS == {"dask.org/cluster-name": name, "dask.org/component": "worker"}
    assert k8s.SCHEDULER_PODS == {"dask.org/cluster-name": name, "dask.org/component": "scheduler"}
    assert k8s.scheduler_address() == f"tls://{name}-scheduler:{k8s.SCHEDULER_PORT}"
    assert k8s.scheduler_address() in (HUB / "README.md").read_text()
    # The operator names worker pods <group>-worker-<10 hex>: still a DNS label.
    for group in (f"{name}-default", cluster["DaskWorkerGroup"]["metadata"]["name"]):
        assert DNS_LABEL.match(f"{group}-worker-{'0' * 10}")


def test_every_pod_runs_the_image_named_in_the_config(course):
    """Change hub.image_name and hub.image_tag: does every manifest follow, and the old name vanish?"""
    hub = replace(course.config.hub, image_name="ghcr.io/another-course/nb", image_tag="2031.2")
    other = Course(root=course.root, config=replace(course.config, hub=hub))
    texts = render.render_texts(other)
    assert not any(course.config.hub.image_name in text for text in texts.values())
    values = yaml.safe_load(texts["values.yaml"])
    assert values["singleuser"]["image"] == {"name": "ghcr.io/another-course/nb", "tag": "2031.2"}
    images = [c["image"] for doc in yaml.safe_load_all(texts["grading-cluster.yaml"])
              for c in _all_containers(doc)]
    assert images and set(images) == {"ghcr.io/another-course/nb:2031.2"}


def test_worker_counts_come_from_the_config(course):
    hub = replace(course.config.hub, cpu_grading_workers=7, gpu_grading_workers=0)
    docs = _cluster_of(Course(root=course.root, config=replace(course.config, hub=hub)))
    assert docs["DaskCluster"]["spec"]["worker"]["replicas"] == 7
    assert docs["DaskWorkerGroup"]["spec"]["worker"]["replicas"] == 0


def _cluster_of(course: Course) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in _documents(course, "grading-cluster.yaml")}


def _all_containers(doc: Any) -> list[dict[str, Any]]:
    """Every container anywhere in ``doc`` (any ``containers`` list, however deep)."""
    if isinstance(doc, list):
        return [c for item in doc for c in _all_containers(item)]
    if not isinstance(doc, dict):
        return []
    found = list(doc.get("containers", []))
    return found + [c for key, value in doc.items() if key != "containers"
                    for c in _all_containers(value)]
