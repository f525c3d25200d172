#!/bin/sh
# A grading worker of the production cluster (hub/grading-cluster.yaml runs this in the course
# image, as root in a privileged container: autograder/hosting/grading_cluster.py says why).
# Arguments: those of `dask worker` (the scheduler's address first).
#
# Not run in this repository's tests (no Kubernetes there): hub/README.md says what was tested.
set -eu

# cgroup v2: the container's cgroup is the root of its cgroup namespace, and a v2 group that
# holds processes cannot give controllers to child groups. Move every process of the
# container (tini and this shell) into a leaf, so the grader can make each job's group
# (memory, pids) beside it, as it does on a grading host.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/worker
    for pid in $(cat /sys/fs/cgroup/cgroup.procs); do
        echo "$pid" > /sys/fs/cgroup/worker/cgroup.procs 2>/dev/null || true
    done
fi

# Fail here, naming the missing part (bubblewrap, user namespaces, cgroups, the slot users),
# rather than on every submission the worker would be sent.
course sandbox check

exec dask worker "$@"
