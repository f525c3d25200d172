"""The grading cluster (``hub/grading-cluster.yaml``): a ``DaskCluster`` for the Dask Kubernetes
operator (``kubernetes.dask.org/v1``) whose default worker group has no GPU, and a
``DaskWorkerGroup`` of GPU workers that joins it.

The grading service is the Dask client (``grading.executor = "dask"``, ``grading.dask_scheduler``
= :func:`~autograder.hosting.k8s.scheduler_address`); each worker grades one submission at a
time (``--nthreads 1``) in the kit's own sandbox. Who sees what:

- the hidden split, answer keys, rubric and solutions (:data:`~autograder.hosting.k8s.GRADER_CLAIM`)
  are mounted read-only in the workers only: never in the scheduler (it runs no grading code),
  never in user pods (``values.yaml`` does not name the claim); student code does not see them
  either (bubblewrap binds only the job's own folders);
- every container's requests equal its limits (no overcommit while grading); GPU workers
  request ``nvidia.com/gpu`` and advertise the Dask resource ``GPU=1``, CPU workers neither;
- no pod gets a service-account token, service links or a writable root filesystem.

The scheduler runs as an unprivileged uid with every capability dropped, as the per-submission
Job this replaces did. The workers cannot: see :data:`WORKER_SECURITY`.

Dask peers speak mutual TLS: the scheduler, every worker and the grading service present the
course's certificate from the Secret :data:`~autograder.hosting.k8s.DASK_TLS_SECRET` and refuse
any peer without one (``autograder/grading/dask_tls.py`` says why), so a pod that slips past
the network policies can neither submit work nor join as a worker.

Deliberately not rendered: the grading service's own Deployment (hub/README.md lists what it
needs), the TLS Secret (``course dask certs`` makes its files; they are not for a repository),
node selectors and tolerations (cloud-specific).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from autograder.course.config import RUBRIC_DIR, Course
from autograder.course.settings import CourseConfig
from autograder.grading import dask_executor, dask_tls
from autograder.grading.stage import STAGE_ROOT
from autograder.hosting.k8s import (
    APP_LABELS,
    CLUSTER_NAME,
    COURSE_ROOT_IN_IMAGE,
    DASK_TLS_MOUNT,
    DASK_TLS_SECRET,
    DATA_CLAIM,
    GRADER_CLAIM,
    GRADING_WORKER_SCRIPT,
    SCHEDULER_PODS,
    SCHEDULER_PORT,
    app_labels,
    image_ref,
    scheduler_address,
)

API_VERSION = "kubernetes.dask.org/v1"
WORKER_PRELOAD = "autograder.grading.dask_worker"
"""Checks the worker's course copy before it joins; refuses to start (exit 78) otherwise."""
WORKER_STATE = "worker-state"
GPU_RESOURCE = ",".join(f"{name}={count}" for name, count in dask_executor.GPU_RESOURCE.items())
"""What a GPU worker advertises (``--resources GPU=1``): exactly what a submission asks for
when ``grading.gpu`` is set, so it runs only there."""
COMM_PORT_NAME = "tcp-comm"
"""The name the operator looks the scheduler's comm port up by, in its Service."""
SCHEDULER_UID = 10001
SCHEDULER_RESOURCES = {"cpu": "1", "memory": "1024Mi"}
"""The scheduler only routes tasks and results (one notebook's score and reports each)."""
GRADER_OVERHEAD_MB = 2048
"""Worker memory beyond ``limits.memory_mb`` (the sandboxed kernel's own cgroup limit): the
Dask worker and nanny, the grader and the confined checker loading the exported models. The
pod's limit must sit above the kernel's, or Kubernetes kills the whole worker before the kit's
limit fires and tells the student which cell hit it."""

TLS_VOLUME = "dask-tls"
TLS_ARGS = dask_tls.cli_args(DASK_TLS_MOUNT)
"""``--tls-ca-file``, ``--tls-cert``, ``--tls-key`` of the Secret as mounted."""


def _tls_volume() -> dict[str, Any]:
    # 0440 and the scheduler's fsGroup: its uid reads the key; the workers are root.
    return {"name": TLS_VOLUME, "secret": {"secretName": DASK_TLS_SECRET, "defaultMode": 0o440}}


def _tls_mount() -> dict[str, Any]:
    return {"name": TLS_VOLUME, "mountPath": str(DASK_TLS_MOUNT), "readOnly": True}


LOCKED_DOWN = {
    "runAsNonRoot": True, "runAsUser": SCHEDULER_UID, "runAsGroup": SCHEDULER_UID,
    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}
"""A container with no privilege at all (the scheduler's)."""

WORKER_SECURITY = {"privileged": True, "runAsUser": 0, "runAsNonRoot": False,
                   "readOnlyRootFilesystem": True}
"""The grading worker runs the kit's sandbox, which needs what it needs on a grading host:

- root, to switch each job to its slot's unprivileged uid (``setpriv``), mount the job's
  size-capped tmpfs and write the job's cgroup (memory, processes) — container runtimes mount
  ``/sys/fs/cgroup`` writable only in privileged containers;
- bubblewrap, started as that unprivileged uid, creates user, mount, pid and network
  namespaces and mounts a fresh ``/proc``: the runtime's default seccomp profile refuses
  ``unshare`` without ``CAP_SYS_ADMIN``, its AppArmor profile refuses mounts, and its masked
  ``/proc`` forbids a new one — none of which applies in a privileged container. The node must
  allow user namespaces (``user.max_user_namespaces`` > 0).

A privileged container runs without the runtime's seccomp and AppArmor profiles, so the pod
names none. Student code itself runs with no capability, ``no_new_privs``, a read-only ``/``,
no network, under its own uid and cgroup; the grader's root filesystem stays read-only too."""


def render_grading_cluster(course: Course) -> list[dict[str, Any]]:
    """The ``DaskCluster`` (scheduler + CPU workers) and the GPU ``DaskWorkerGroup``."""
    c = course.config
    cluster = {
        "apiVersion": API_VERSION,
        "kind": "DaskCluster",
        "metadata": {"name": CLUSTER_NAME, "labels": dict(APP_LABELS)},
        "spec": {"worker": _worker_group(c, gpu=False), "scheduler": _scheduler(c)},
    }
    gpu_group = {
        "apiVersion": API_VERSION,
        "kind": "DaskWorkerGroup",
        "metadata": {"name": f"{CLUSTER_NAME}-gpu", "labels": dict(APP_LABELS)},
        "spec": {"cluster": CLUSTER_NAME, "worker": _worker_group(c, gpu=True)},
    }
    return [cluster, gpu_group]


def worker_resources(c: CourseConfig, *, gpu: bool) -> dict[str, str]:
    """One worker's requests, which are also its limits."""
    resources = {"cpu": f"{c.hub.cpu_limit:g}",
                 "memory": quantity_mib(c.limits.memory_mb + GRADER_OVERHEAD_MB)}
    if gpu:
        resources["nvidia.com/gpu"] = str(c.hub.gpu_limit)
    return resources


def grader_only_paths(c: CourseConfig) -> dict[str, PurePosixPath]:
    """Subfolder of :data:`GRADER_CLAIM` -> where the workers mount it in the image. The
    ``.dockerignore`` leaves each of these out of the image, which students run too."""
    course = _course_in_image(c)
    d = c.dataset
    hidden = course.dataset_hidden_dir if d.source == "generated" else course.path(d.source)
    return {"hidden": PurePosixPath(hidden),
            "answer-keys": PurePosixPath(course.answer_key_dir),
            "rubric": PurePosixPath(course.root / RUBRIC_DIR),
            "source": PurePosixPath(course.source_root)}


def quantity_mib(mb: float) -> str:
    return f"{int(round(mb))}Mi"


def _course_in_image(c: CourseConfig) -> Course:
    return Course(root=Path(COURSE_ROOT_IN_IMAGE), config=c)


def _worker_group(c: CourseConfig, *, gpu: bool) -> dict[str, Any]:
    return {
        "replicas": c.hub.gpu_grading_workers if gpu else c.hub.cpu_grading_workers,
        "metadata": {"labels": app_labels("grading-worker")},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [_worker_container(c, gpu=gpu)],
            "volumes": _worker_volumes(c),
        },
    }


def _worker_container(c: CourseConfig, *, gpu: bool) -> dict[str, Any]:
    # The operator sets DASK_WORKER_NAME in the container's env (Kubernetes expands $(...) in
    # args from it) and DASK_SCHEDULER_ADDRESS, which says tcp://: the workers are given the
    # tls:// address instead. tini reaps what the sandbox leaves behind.
    args = [scheduler_address(), "--name", "$(DASK_WORKER_NAME)", "--nthreads", "1",
            "--no-dashboard", "--preload-nanny", WORKER_PRELOAD, *TLS_ARGS]
    if gpu:
        args += ["--resources", GPU_RESOURCE]
    resources = worker_resources(c, gpu=gpu)
    return {
        "name": "worker",
        "image": image_ref(c.hub),
        "command": ["tini", "--", str(GRADING_WORKER_SCRIPT)],
        "args": args,
        "env": [{"name": "COURSE_ROOT", "value": str(COURSE_ROOT_IN_IMAGE)},
                {"name": "COURSE_PROFILE", "value": c.default_profile},
                {"name": "COURSE_WEIGHTS_DIR", "value": c.weights.cache_dir},
                {"name": "HOME", "value": "/tmp"}],
        "resources": {"limits": dict(resources), "requests": dict(resources)},
        "securityContext": dict(WORKER_SECURITY),
        "volumeMounts": _worker_mounts(c),
    }


def _worker_volumes(c: CourseConfig) -> list[dict[str, Any]]:
    def claim(name: str, *, read_only: bool) -> dict[str, Any]:
        return {"name": name, "persistentVolumeClaim": {"claimName": name, "readOnly": read_only}}

    return [
        # The grader's temporary folders and copies of what the kernel exported.
        {"name": "tmp", "emptyDir": {"sizeLimit": quantity_mib(c.limits.disk_mb + c.limits.export_mb)}},
        # The sandbox's stage: job tmpfs mount points, slot locks (autograder/grading/stage.py).
        {"name": "run", "emptyDir": {"sizeLimit": "64Mi"}},
        claim(DATA_CLAIM, read_only=True),
        claim(GRADER_CLAIM, read_only=True),
        # The worker's own .course-state (its trusted embeddings cache): results go back to
        # the client as data (autograder/grading/remote.py), so nothing here is shared.
        {"name": WORKER_STATE, "emptyDir": {"sizeLimit": "2Gi"}},
        _tls_volume(),
    ]


def _worker_mounts(c: CourseConfig) -> list[dict[str, Any]]:
    course = _course_in_image(c)
    return [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "run", "mountPath": str(STAGE_ROOT.parent)},
        {"name": DATA_CLAIM, "mountPath": c.weights.cache_dir, "subPath": "weights", "readOnly": True},
        {"name": DATA_CLAIM, "mountPath": str(course.dataset_build_dir), "subPath": "dataset",
         "readOnly": True},
        *({"name": GRADER_CLAIM, "mountPath": str(path), "subPath": sub, "readOnly": True}
          for sub, path in grader_only_paths(c).items()),
        {"name": WORKER_STATE, "mountPath": str(course.state_dir)},
        _tls_mount(),
    ]


def _scheduler(c: CourseConfig) -> dict[str, Any]:
    container = {
        "name": "scheduler",
        "image": image_ref(c.hub),
        "command": ["tini", "--", "dask", "scheduler"],
        "args": ["--port", str(SCHEDULER_PORT), "--no-dashboard", "--protocol", "tls", *TLS_ARGS],
        "ports": [{"name": COMM_PORT_NAME, "containerPort": SCHEDULER_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": COMM_PORT_NAME}, "periodSeconds": 10},
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"limits": dict(SCHEDULER_RESOURCES), "requests": dict(SCHEDULER_RESOURCES)},
        "securityContext": dict(LOCKED_DOWN),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, _tls_mount()],
    }
    return {
        "metadata": {"labels": app_labels("grading-scheduler")},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": SCHEDULER_UID,
                                "runAsGroup": SCHEDULER_UID, "fsGroup": SCHEDULER_UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, _tls_volume()],
        },
        "service": {
            "type": "ClusterIP",
            "selector": dict(SCHEDULER_PODS),
            "ports": [{"name": COMM_PORT_NAME, "protocol": "TCP", "port": SCHEDULER_PORT,
                       "targetPort": COMM_PORT_NAME}],
        },
    }
