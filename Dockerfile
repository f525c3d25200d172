# The course image: one image for the students' servers (Zero to JupyterHub's singleuser.image)
# and for the grading cluster (Dask scheduler and workers, hub/grading-cluster.yaml).
#
#   docker build --build-arg TF_EXTRA=gpu -t <hub.image_name>:<hub.image_tag> .
#
# TF_EXTRA picks pyproject.toml's TensorFlow extra: cpu (tensorflow-cpu) or gpu
# (tensorflow[and-cuda]; the NVIDIA driver comes from the node). Everything else is the same
# pinned pyproject.toml that scripts/bootstrap.sh installs on a grading host.
#
# Students run this image, so nothing secret enters it (.dockerignore): the hidden split,
# answer keys, rubric and solutions reach the grading workers only, from their own volume
# (hub/README.md). Not built in this repository's CI (no Docker there); scripts/check-image.sh
# builds it with podman and runs a worker and the grading cluster from it.
FROM debian:12-slim

ARG TF_EXTRA=cpu

# Debian's Python (the venv is made from /usr/bin/python3, as on a grading host), bubblewrap
# and util-linux (setpriv, prlimit) for the grader's sandbox, tini to reap what it leaves.
# scripts/bootstrap.sh's browser and Node.js are for the local hub's tests only.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv bubblewrap util-linux mount procps tini ca-certificates \
    && rm -rf /var/lib/apt/lists/*

ENV COURSE_ROOT=/srv/course \
    VIRTUAL_ENV=/srv/course/.venv \
    PATH=/srv/course/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /srv/course
COPY . /srv/course

# Editable, as on a grading host: the workers mount the rubric at autograder/rubric/ of this
# checkout, and `autograder.rubric` must import from there. The checkout and the venv are made
# readable by uid 1000 in this same layer: a chmod -R in a later RUN copies every file of the
# venv into that layer (measured with podman: a second 2.25 GB layer, a 4.86 GB image).
RUN case "$TF_EXTRA" in cpu|gpu) ;; *) echo "TF_EXTRA must be cpu or gpu, not '$TF_EXTRA'" >&2; exit 2 ;; esac \
    && /usr/bin/python3 -m venv /srv/course/.venv \
    && /srv/course/.venv/bin/pip install --no-cache-dir --upgrade pip \
    && /srv/course/.venv/bin/pip install --no-cache-dir -e ".[${TF_EXTRA},hub]" \
    && chmod -R a+rX /srv/course

# The grading slots' unprivileged users and the checker's group, from course_config.py, made
# now: the workers' root filesystem is read-only, so `course sandbox setup` cannot add them later.
RUN python -c "from autograder.course.config import load_course; \
from autograder.course.permissions import ensure_grader_group; \
from autograder.grading.sandbox_users import ensure_sandbox_users; \
g = load_course().config.grading; \
ensure_sandbox_users(g.sandbox_user_prefix, g.concurrency); ensure_grader_group()"

# Zero to JupyterHub runs the students' servers as uid 1000 (its singleuser.uid default).
RUN useradd --uid 1000 --gid users --create-home --shell /bin/bash jovyan
USER 1000
ENTRYPOINT ["tini", "--"]
CMD ["jupyterhub-singleuser"]
