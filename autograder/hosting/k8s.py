"""What the rendered Kubernetes manifests share: the image, the volume claims, the pod labels.

Names only, no manifests: :mod:`autograder.hosting.render` (the Zero to JupyterHub values),
:mod:`autograder.hosting.grading_cluster` (the Dask cluster) and
:mod:`autograder.hosting.network` (its network policies) read them, so that a claim, a path
in the image or a label is spelt once. ``hub/README.md`` says what each claim holds.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from autograder.course.settings import HubSettings

COURSE_ROOT_IN_IMAGE = PurePosixPath("/srv/course")
"""Where the ``Dockerfile`` puts the course repository (minus its secrets) and its venv."""
GRADING_WORKER_SCRIPT = COURSE_ROOT_IN_IMAGE / "scripts" / "grading-worker.sh"
"""The grading workers' entrypoint in the image (from ``scripts/`` of this repository)."""

DATA_CLAIM = "course-data"
"""Public course data, read-only wherever it is mounted: ``dataset/`` (the student splits)
and ``weights/`` (the verified ResNet50 file)."""
GRADER_CLAIM = "course-grader-data"
"""What only the grading workers may read: ``hidden/`` (the grading split), ``answer-keys/``,
``rubric/`` and ``source/`` (the solutions). Never named in a user pod or the scheduler."""
STATE_CLAIM = "course-state"
"""The grading service's ``.course-state/`` (its job store and output). Not mounted in the
workers: a submission reaches them as data and its results come back as data
(``autograder/grading/remote.py``); each worker keeps its own embeddings cache."""
EXCHANGE_CLAIM = "nbgrader-exchange"
"""nbgrader's exchange (ReadWriteMany), in every user pod."""
DATA_MOUNT = "/srv/course/data"
"""Where user pods find the student splits (``COURSE_DATA_DIR``)."""

APP_LABELS = {"app.kubernetes.io/name": "course-autograder"}


def app_labels(component: str) -> dict[str, str]:
    """The kit's labels of one kind of pod (``grading-worker``, ``grading-service``, ...)."""
    return {**APP_LABELS, "app.kubernetes.io/component": component}


SERVICE_LABELS = app_labels("grading-service")
"""Labels the grading service's pods must carry: the scheduler accepts them (hub/README.md)."""

CLUSTER_NAME = "course-grading"
"""The ``DaskCluster``; the operator names its scheduler Service ``<name>-scheduler``."""
SCHEDULER_PORT = 8786
"""Dask's comm port, the only one the scheduler serves (no dashboard)."""
DASK_CLUSTER_LABEL = "dask.org/cluster-name"
DASK_COMPONENT_LABEL = "dask.org/component"
"""Labels the Dask operator puts on every scheduler and worker pod it creates."""


def image_ref(hub: HubSettings) -> str:
    """``<hub.image_name>:<hub.image_tag>``: the one image of every pod."""
    return f"{hub.image_name}:{hub.image_tag}"


DASK_TLS_SECRET = "course-dask-tls"
"""The Secret holding the grading cluster's TLS set (``course dask certs``: ``ca.pem``,
``node.pem``, ``node-key.pem``), made by the course team and never rendered. Mounted in the
scheduler, the workers and the grading service; never in a user pod."""
DASK_TLS_MOUNT = PurePosixPath("/etc/course/dask-tls")
"""Where those pods mount it (``grading.dask_tls_dir`` of the grading service)."""


def scheduler_address() -> str:
    """What ``grading.dask_scheduler`` is set to in the grading service's namespace, and what the
    workers connect to (the operator's own ``DASK_SCHEDULER_ADDRESS`` says ``tcp://``)."""
    return f"tls://{CLUSTER_NAME}-scheduler:{SCHEDULER_PORT}"


def pod_selector(component: str) -> dict[str, str]:
    """The operator's labels of this cluster's pods of one component."""
    return {DASK_CLUSTER_LABEL: CLUSTER_NAME, DASK_COMPONENT_LABEL: component}


SCHEDULER_PODS = pod_selector("scheduler")
WORKER_PODS = pod_selector("worker")
"""Every worker of the cluster, of any worker group (the operator labels them all so)."""
