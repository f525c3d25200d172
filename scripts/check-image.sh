#!/usr/bin/env bash
# Build the course image from ./Dockerfile with Debian's podman and smoke-test it: the students'
# server (uid 1000), the secrets left out, a grading worker that grades one real submission in
# its sandbox with the grader's material mounted read-only, and the grading cluster of
# hub/grading-cluster.yaml (scheduler, worker, and the service's `course grade` without any
# secret, over mutual TLS) run from that image with the rendered arguments.
# Not run by CI or the tests (it needs root, podman, PyPI and several minutes).
#
#   sudo scripts/check-image.sh                      # cpu image, tag localhost/course-notebook:check
#   sudo IMAGE=localhost/nb:gpu TF_EXTRA=gpu scripts/check-image.sh
#
# Needs on the host: Debian 12, root, deb.debian.org and PyPI (no container registry: the
# base image is made with debootstrap and imported under the name the Dockerfile's FROM
# uses), and the grader's material built in this checkout: `course data build`, the stand-in
# weights in $WEIGHTS_DIR and `course calibrate cnn_transfer --profile reduced
# --weights-mode stand-in` (answer_keys/cnn_transfer/reduced-stand-in.json).
# Logs and scratch go to $WORK. Exits non-zero on the first failure.
set -euo pipefail

IMAGE=${IMAGE:-localhost/course-notebook:check}
TF_EXTRA=${TF_EXTRA:-cpu}
WORK=${WORK:-/tmp/image-check}
WEIGHTS_DIR=${WEIGHTS_DIR:-/var/lib/course/weights}   # course_config.py's weights.cache_dir
# A CA bundle that PyPI's certificate chains to, for pip inside the build, when the host
# reaches PyPI through a TLS-intercepting proxy (pip's own $PIP_CERT by default). Mounted
# for the build's RUN steps only (podman build --volume), never copied into a layer.
BUILD_CA_BUNDLE=${BUILD_CA_BUNDLE-${PIP_CERT:-}}
REBUILD_BASE=${REBUILD_BASE:-0}                      # 1: debootstrap the base image again

REPO=$(cd "$(dirname "$0")/.." && pwd)
BASE=docker.io/library/debian:12-slim                # what the Dockerfile's FROM resolves to
mkdir -p "$WORK"
step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%T)"; }
die() { echo "check-image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (podman rootful, debootstrap)"
case "$TF_EXTRA" in cpu|gpu) ;; *) die "TF_EXTRA must be cpu or gpu, not '$TF_EXTRA'" ;; esac

# --- 1. podman, debootstrap -------------------------------------------------------------
step "install podman, runc, debootstrap"
# runc, not Debian's default crun: crun 1.8 refuses hosts whose cgroups are hybrid (v1
# controllers plus a cgroup2 mount holding a controller): "cgroups in hybrid mode not
# supported, drop all controllers from cgroupv2".
need=()
for cmd in podman runc debootstrap; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y podman runc debootstrap uidmap \
        slirp4netns fuse-overlayfs >"$WORK/apt-install.log" 2>&1 || die "apt-get failed: $WORK/apt-install.log"
fi
PODMAN=(podman --runtime runc)
# Podman raises a root container's RLIMIT_NOFILE to 1048576; a root without
# CAP_SYS_RESOURCE (some VMs and CI sandboxes) cannot, and runc fails with "error setting
# rlimit type 7: operation not permitted". Then stay at this shell's hard limits.
ULIMITS=()
capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)
if (( (16#$capeff >> 24 & 1) == 0 )); then
    nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
    ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$nproc:$nproc")
fi
"${PODMAN[@]}" info --format '{{.Store.GraphDriverName}} storage, cgroup {{.Host.CgroupsVersion}}'

# --- 2. the base image, offline ---------------------------------------------------------
step "base image $BASE from debootstrap"
if [ "$REBUILD_BASE" = 1 ] || ! podman image exists "$BASE"; then
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian \
        >"$WORK/debootstrap.log" 2>&1 || die "debootstrap failed: $WORK/debootstrap.log"
    rm -rf "$WORK"/rootfs/var/lib/apt/lists/* "$WORK"/rootfs/var/cache/apt/*.bin \
        "$WORK"/rootfs/var/cache/apt/archives/*.deb      # as slim images ship: no apt lists
    tar -C "$WORK/rootfs" -c . | podman import --change 'CMD ["bash"]' - "$BASE" >/dev/null
fi
podman image exists "$BASE" || die "no base image $BASE"

# --- 3. the build -----------------------------------------------------------------------
step "build $IMAGE (TF_EXTRA=$TF_EXTRA)"
BUILD_MOUNTS=()
if [ -n "$BUILD_CA_BUNDLE" ]; then
    [ -f "$BUILD_CA_BUNDLE" ] || die "BUILD_CA_BUNDLE $BUILD_CA_BUNDLE is not a file"
    mkdir -p "$WORK/build-ca"
    cp "$BUILD_CA_BUNDLE" "$WORK/build-ca/ca-bundle.crt"
    printf '[global]\ncert = /run/build-ca/ca-bundle.crt\n' >"$WORK/build-ca/pip.conf"
    # buildah leaves the mount points behind, empty: /run/build-ca/ and a 0-byte /etc/pip.conf.
    BUILD_MOUNTS=(--volume "$WORK/build-ca:/run/build-ca:ro"
                  --volume "$WORK/build-ca/pip.conf:/etc/pip.conf:ro")
fi
start=$SECONDS
( cd "$REPO" && nice -n 10 "${PODMAN[@]}" build --pull=never --network=host "${ULIMITS[@]}" \
    "${BUILD_MOUNTS[@]}" --build-arg "TF_EXTRA=$TF_EXTRA" -t "$IMAGE" . ) \
    >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; die "build failed: $WORK/build.log"; }
echo "built in $((SECONDS - start)) s"
podman image ls "$IMAGE"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-110

RUN=("${PODMAN[@]}" run --rm --network none "${ULIMITS[@]}")

# --- 4a. the students' server: uid 1000, the kit's commands ----------------------------
step "students' server"
"${RUN[@]}" "$IMAGE" id | tee "$WORK/id.log"
grep -q '^uid=1000(jovyan) ' "$WORK/id.log" || die "the default user is not uid 1000"
"${RUN[@]}" "$IMAGE" course --help >/dev/null || die "course --help failed"
"${RUN[@]}" "$IMAGE" jupyterhub-singleuser --help >/dev/null || die "jupyterhub-singleuser --help failed"
echo "course --help, jupyterhub-singleuser --help: ok"

# --- 4b. no secret in the image ---------------------------------------------------------
step "secrets left out of the image"
"${RUN[@]}" "$IMAGE" bash -c '
    set -e; cd /srv/course; bad=0
    for p in answer_keys datasets/hidden datasets/build source autograder/rubric tests bench \
             .git .course-state .pytest_cache node_modules submitted autograded gradebook.db; do
        if [ -e "$p" ]; then echo "in the image: /srv/course/$p"; bad=1; fi
    done
    grep -qx "command = /usr/bin/python3 -m venv /srv/course/.venv" .venv/pyvenv.cfg \
        || { echo "the venv was not made in the image"; bad=1; }
    if [ -e /run/build-ca ] && [ -n "$(ls -A /run/build-ca)" ]; then echo "build CA in the image"; bad=1; fi
    if [ -s /etc/pip.conf ]; then echo "a non-empty /etc/pip.conf in the image"; bad=1; fi
    ls -A; exit $bad' || die "the image holds what it must not"

# --- 4c. a grading worker ---------------------------------------------------------------
step "grading worker: sandbox check and one submission"
key=answer_keys/cnn_transfer/reduced-stand-in.json
for need in datasets/build datasets/hidden "$key" autograder/rubric source; do
    [ -e "$REPO/$need" ] || die "$REPO/$need is missing: build it first (README: course data build, course calibrate)"
done
[ -f "$WEIGHTS_DIR/resnet50_standin_notop.weights.h5" ] || die "no stand-in weights in $WEIGHTS_DIR"
scratch="$WORK/worker"
rm -rf "$scratch"; mkdir -p "$scratch/state" "$scratch/out"
mounts=(-v "$WEIGHTS_DIR:/var/lib/course/weights:ro"
        -v "$REPO/datasets/build:/srv/course/datasets/build:ro"
        -v "$scratch/state:/srv/course/.course-state"
        -v "$scratch/out:/out")
# The workers' secrets, read-only as the course-grader-data volume is, seeded readable by the
# checker (hub/README.md step 5: `chmod -R a+rX`): a copy, so the checkout keeps its modes.
grader="$scratch/grader"
for rel in datasets/hidden answer_keys autograder/rubric source; do
    mkdir -p "$grader/$(dirname "$rel")"
    cp -a "$REPO/$rel" "$grader/$rel"
    chmod -R a+rX "$grader/$rel"
    mounts+=(-v "$grader/$rel:/srv/course/$rel:ro")
done
# As hub/grading-cluster.yaml runs a worker: root in a privileged container, read-only root
# filesystem, writable /tmp and /run, the course's environment.
WORKER=("${RUN[@]}" --privileged --user 0 --read-only --tmpfs /tmp:size=2g --tmpfs /run:size=64m
        -e COURSE_ROOT=/srv/course -e COURSE_PROFILE=reduced -e COURSE_WEIGHTS_MODE=stand-in
        -e COURSE_WEIGHTS_DIR=/var/lib/course/weights -e HOME=/tmp "${mounts[@]}")
"${WORKER[@]}" "$IMAGE" course sandbox check || die "course sandbox check failed in the worker"
# The reference solution as a student hands it in (hidden tests removed), graded by the kit.
start=$SECONDS
nice -n 10 "${WORKER[@]}" "$IMAGE" bash -c '
    set -e
    python -c "from pathlib import Path; from autograder.course.samples import write_samples; \
write_samples(Path(\"/srv/course/source/cnn_transfer/cnn_transfer.ipynb\"), Path(\"/tmp/subs\"), names=[\"reference\"])"
    course grade cnn_transfer /tmp/subs/reference/cnn_transfer.ipynb --student reference \
        --out /out/graded --gradebook /out/gradebook.db' 2>&1 | tee "$WORK/grade.log" \
    || die "grading failed: $WORK/grade.log"
echo "graded in $((SECONDS - start)) s"
python3 - "$scratch/out/graded/reference/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
x = r["extra_data"]
print(f"score {r['score']:g}/{r['max_score']:g}, kernel {x['kernel_status']}, "
      f"sandboxed {x['sandboxed']}, execution {r['execution_time']} s")
sys.exit(0 if x["sandboxed"] and x["kernel_status"] == "finished" and r["score"] == r["max_score"] else 1)
EOF

# --- 4d. the worker's entrypoint gets past its sandbox check --------------------------------
# scripts/grading-worker.sh runs `course sandbox check`, then `dask worker`; with no scheduler
# to reach (no network), the worker gives up after --death-timeout.
step "scripts/grading-worker.sh"
timeout 120 "${WORKER[@]}" "$IMAGE" /srv/course/scripts/grading-worker.sh tcp://127.0.0.1:1 \
    --nthreads 1 --no-dashboard --death-timeout 10 >"$WORK/grading-worker.log" 2>&1 || true
head -1 "$WORK/grading-worker.log"
grep -q '^sandbox ready' "$WORK/grading-worker.log" && grep -q 'Timed out starting worker' "$WORK/grading-worker.log" \
    || die "grading-worker.sh did not reach dask worker: $WORK/grading-worker.log"

# --- 5. the grading cluster of hub/grading-cluster.yaml, from this image -----------------
# The scheduler and a CPU worker run with the rendered args and env (the scheduler's name
# resolves to loopback; a free port replaces 8786, the reduced profile the rendered one),
# their certificates mounted as Kubernetes mounts the course-dask-tls Secret (0440, the
# scheduler's uid through its group). The client is the grading service's `course grade`
# with the course_config.py a course team fills in (hub/README.md step 2) and nothing of the
# grader's: no source, no key, no hidden split, no rubric.
step "grading cluster: scheduler, worker and a client without secrets, over mutual TLS"
PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || die "no $PY: run \`make setup\` first"
cluster="$WORK/cluster"
rm -rf "$cluster"; mkdir -p "$cluster/out" "$cluster/state" "$cluster/client-state"
"${RUN[@]}" --user 0 -v "$cluster:/cluster" "$IMAGE" course dask certs /cluster/dask-tls >/dev/null \
    || die "course dask certs failed in the image"
chown -R 0:10001 "$cluster/dask-tls"; chmod 0750 "$cluster/dask-tls"; chmod 0440 "$cluster"/dask-tls/*
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rendered() {  # rendered() scheduler|worker args|env|user: one item per line, from the manifest
    "$PY" - "$REPO/hub/grading-cluster.yaml" "$1" "$2" "$port" <<'PYEOF'
import sys, yaml
path, which, what, port = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
cluster = next(d for d in docs if d["kind"] == "DaskCluster")
spec = cluster["spec"]["scheduler" if which == "scheduler" else "worker"]["spec"]
(container,) = spec["containers"]
if what == "args":
    for a in container["args"]:
        print(a.replace(":8786", f":{port}") if a != "8786" else port)
elif what == "env":
    for e in container.get("env", []):
        if "value" in e:
            print(f"{e['name']}={e['value']}")
elif what == "user":
    print(container.get("securityContext", {}).get("runAsUser", 0))
PYEOF
}
mapfile -t sargs < <(rendered scheduler args); mapfile -t senv < <(rendered scheduler env)
mapfile -t wargs < <(rendered worker args)
mapfile -t wenv < <(rendered worker env | grep -v '^COURSE_PROFILE=')  # the reduced one below
suser=$(rendered scheduler user)
[ "${#sargs[@]}" -gt 0 ] && [ "${#wargs[@]}" -gt 0 ] || die "no scheduler/worker args in hub/grading-cluster.yaml"
envs() { for e in "$@"; do printf -- '-e\0%s\0' "$e"; done; }
mapfile -d '' -t senvargs < <(envs "${senv[@]}")
mapfile -d '' -t wenvargs < <(envs "${wenv[@]}")
NET=(--network host --add-host course-grading-scheduler:127.0.0.1)
TLS=(-v "$cluster/dask-tls:/etc/course/dask-tls:ro")
cleanup() { podman rm -f course-check-scheduler course-check-worker >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
"${PODMAN[@]}" run -d --name course-check-scheduler "${NET[@]}" "${ULIMITS[@]}" --read-only \
    --tmpfs /tmp --user "$suser:$suser" "${TLS[@]}" "${senvargs[@]}" \
    "$IMAGE" dask scheduler "${sargs[@]}" >/dev/null
# DASK_WORKER_NAME is the operator's; COURSE_ASSIGNMENTS: this checkout calibrated cnn_transfer
"${PODMAN[@]}" run -d --name course-check-worker "${NET[@]}" "${ULIMITS[@]}" --privileged --user 0 \
    --read-only --tmpfs /tmp:size=2g --tmpfs /run:size=64m "${mounts[@]}" \
    "${TLS[@]}" "${wenvargs[@]}" -e DASK_WORKER_NAME=course-check-worker -e COURSE_PROFILE=reduced \
    -e COURSE_WEIGHTS_MODE=stand-in -e COURSE_ASSIGNMENTS=cnn_transfer \
    "$IMAGE" /srv/course/scripts/grading-worker.sh "${wargs[@]//\$(DASK_WORKER_NAME)/course-check-worker}" >/dev/null
"$PY" -c "
from autograder.course.samples import write_samples; from pathlib import Path
write_samples(Path('$REPO/source/cnn_transfer/cnn_transfer.ipynb'), Path('$cluster/subs'),
              names=['reference', 'wrong_params'])"
for _ in $(seq 180); do  # the sandbox check, then the preload's check of its copy
    podman logs course-check-worker 2>&1 | grep -q "course grading worker: .* can grade" && break
    podman container exists course-check-worker && [ "$(podman inspect -f '{{.State.Running}}' course-check-worker)" = true ] \
        || { podman logs course-check-worker 2>&1 | tail -20; die "the worker stopped"; }
    sleep 1
done
podman logs course-check-worker 2>&1 | grep -E "^sandbox ready|course grading worker" \
    || { podman logs course-check-worker 2>&1 | tail -20; die "the worker did not check its copy"; }
# The service's course_config.py: the grading settings of hub/README.md step 2.
cp "$REPO/course_config.py" "$cluster/course_config.py"
cat >>"$cluster/course_config.py" <<'PYEOF'

import dataclasses as _dc
COURSE = _dc.replace(COURSE, grading=_dc.replace(
    COURSE.grading, executor="dask", dask_scheduler="tls://course-grading-scheduler:8786",
    dask_tls_dir="/etc/course/dask-tls"))
PYEOF
sed -i "s|course-grading-scheduler:8786|course-grading-scheduler:$port|" "$cluster/course_config.py"
start=$SECONDS
nice -n 10 "${PODMAN[@]}" run --rm "${NET[@]}" "${ULIMITS[@]}" --user 0 --read-only --tmpfs /tmp \
    -e HOME=/tmp -e COURSE_PROFILE=reduced -e COURSE_WEIGHTS_MODE=stand-in \
    -v "$cluster/course_config.py:/srv/course/course_config.py:ro" "${TLS[@]}" \
    -v "$WEIGHTS_DIR:/var/lib/course/weights:ro" -v "$cluster/client-state:/srv/course/.course-state" \
    -v "$cluster/subs:/subs:ro" -v "$cluster/out:/out" "$IMAGE" bash -c '
        set -e
        for p in source answer_keys datasets/hidden autograder/rubric; do
            [ ! -e "/srv/course/$p" ] || { echo "the client holds /srv/course/$p"; exit 1; }
        done
        course grade cnn_transfer /subs --out /out/graded --gradebook /out/gradebook.db' \
    >"$WORK/cluster-grade.log" 2>&1 || { tail -40 "$WORK/cluster-grade.log";
        podman logs course-check-worker 2>&1 | tail -20; die "grading through the cluster failed"; }
echo "graded 2 submissions through the cluster in $((SECONDS - start)) s"
"$PY" - "$cluster/out/graded" <<'PYEOF'
import json, sys
from pathlib import Path
res = {p.parent.name: json.loads(p.read_text()) for p in Path(sys.argv[1]).glob("*/results.json")}
for name, r in sorted(res.items()):
    print(f"{name}: {r['score']:g}/{r['max_score']:g}, sandboxed {r['extra_data']['sandboxed']}")
ok = (set(res) == {"reference", "wrong_params"} and all(r["extra_data"]["sandboxed"] for r in res.values())
      and res["reference"]["score"] == res["reference"]["max_score"]
      and res["wrong_params"]["score"] < res["wrong_params"]["max_score"])
sys.exit(0 if ok else 1)
PYEOF

step "image checked: $IMAGE"
