"""The grading cluster's network policies (``hub/networkpolicy.yaml``): who may talk to whom.

- **Workers** accept connections from the scheduler only, and open them to the scheduler's
  comm port and to the cluster DNS only. DNS because the operator hands each worker the
  scheduler by its Service's name (``DASK_SCHEDULER_ADDRESS``); it carries nothing of a
  student's out, since student code runs in bubblewrap's empty network namespace and only the
  grader itself can send a query. A worker holds the hidden split: a Dask worker runs whatever
  function it is sent, so nothing but the scheduler may reach it.
- **The scheduler** accepts connections on its comm port from the workers and from the grading
  service's pods (:data:`~autograder.hosting.k8s.SERVICE_LABELS`) only — a student's server
  that reached it could send any function to a worker — and opens them to the workers only
  (it gathers each result from its worker for the client).

Nothing else: a policy with ``Egress`` and ``Ingress`` in its types and no other rule denies the
rest. Rejected: letting the Dask operator reach the scheduler. It asks the scheduler which
workers to retire when a group shrinks; without that it retires the newest (hub/README.md).
"""

from __future__ import annotations

from typing import Any

from autograder.course.config import Course
from autograder.hosting.k8s import (
    APP_LABELS,
    SCHEDULER_PODS,
    SCHEDULER_PORT,
    SERVICE_LABELS,
    WORKER_PODS,
)

DNS_PORT = 53
CLUSTER_DNS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
"""CoreDNS / kube-dns as kubeadm, GKE, EKS and AKS label it; check yours (hub/README.md)."""


def render_network_policies(course: Course) -> list[dict[str, Any]]:
    """One policy for the workers, one for the scheduler."""
    del course  # the same for every course: the names come from autograder.hosting.k8s
    comm = [{"protocol": "TCP", "port": SCHEDULER_PORT}]
    dns = [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]
    workers = _policy(
        "course-grading-workers", WORKER_PODS,
        ingress=[{"from": [{"podSelector": {"matchLabels": dict(SCHEDULER_PODS)}}]}],
        egress=[{"to": [{"podSelector": {"matchLabels": dict(SCHEDULER_PODS)}}], "ports": comm},
                {"to": [CLUSTER_DNS], "ports": dns}],
    )
    scheduler = _policy(
        "course-grading-scheduler", SCHEDULER_PODS,
        ingress=[{"from": [{"podSelector": {"matchLabels": dict(WORKER_PODS)}},
                           {"podSelector": {"matchLabels": dict(SERVICE_LABELS)}}],
                  "ports": comm}],
        egress=[{"to": [{"podSelector": {"matchLabels": dict(WORKER_PODS)}}]}],
    )
    return [workers, scheduler]


def _policy(name: str, pods: dict[str, str], *, ingress: list[dict[str, Any]],
            egress: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": dict(APP_LABELS)},
        "spec": {"podSelector": {"matchLabels": dict(pods)},
                 "policyTypes": ["Ingress", "Egress"],
                 "ingress": ingress,
                 "egress": egress},
    }
