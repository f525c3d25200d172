#!/usr/bin/env bash
# Run the reference-notebook benchmark on a GPU machine and say exactly what was done.
#
# Usage (from anywhere; it works in the repository root):
#     bash bench/gpu_reference.sh [--profile full] [--venv DIR] [--weights auto|stand-in|imagenet]
#
# It creates (or reuses) a virtualenv with tensorflow[and-cuda]==2.21.0 plus what the
# benchmark needs, installs this kit into it WITHOUT its CPU TensorFlow pin (the two
# TensorFlow wheels would overwrite each other), checks that TensorFlow sees a GPU,
# builds the dataset if it is missing, and runs bench/reference_runtime.py, which
# prints per-part times and the device name and writes the "gpu" section of
# bench/RESULTS.md plus bench/out/reference_runtime-<profile>-<weights>.json.
#
# Needs: python3 >= 3.11 with venv, an NVIDIA driver, and PyPI (or a local mirror via
# PIP_INDEX_URL). Needs no other internet: ResNet50 weights come from the course's
# weights cache (COURSE_WEIGHTS_DIR) or the run uses stand-in weights, labelled so.
set -euo pipefail

PROFILE=full
WEIGHTS=auto
VENV="${COURSE_GPU_VENV:-${TMPDIR:-/tmp}/course-gpu-venv}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) PROFILE="$2"; shift 2 ;;
        --venv) VENV="$2"; shift 2 ;;
        --weights) WEIGHTS="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "gpu_reference.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
say() { printf '\n[gpu_reference] %s\n' "$*"; }
fail() { printf '\n[gpu_reference] FAILED: %s\n' "$*" >&2; exit 1; }

say "repository: $REPO (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
say "driver and devices:"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
    echo "nvidia-smi not found: TensorFlow will probably not see a GPU"
fi

PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || fail "$PY is older than 3.11; set PYTHON=/path/to/python3.11+"

if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating virtualenv $VENV"
    "$PY" -m venv "$VENV" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
else
    say "reusing virtualenv $VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install --quiet --upgrade pip

say "installing tensorflow[and-cuda]==2.21.0 and the benchmark's dependencies"
"$VPY" -m pip install --quiet \
    "tensorflow[and-cuda]==2.21.0" "keras==3.15.1" \
    "nbclient==0.11.0" "nbformat>=5.10,<6" "jupyter_client>=8.6,<9" "ipykernel>=6.29,<8" \
    "numpy>=1.26,<3" "Pillow>=10,<13" "matplotlib>=3.8,<4" "rich>=13,<16" "h5py>=3.10" psutil \
    || fail "pip could not install the GPU stack (is PyPI or PIP_INDEX_URL reachable?)"
say "installing the course kit itself (--no-deps: keeps the CUDA TensorFlow)"
"$VPY" -m pip install --quiet --no-deps -e "$REPO" || fail "pip install -e $REPO failed"
"$VPY" -m pip uninstall --quiet -y tensorflow-cpu >/dev/null 2>&1 || true

say "what TensorFlow sees:"
"$VPY" - <<'EOF' || fail "TensorFlow does not import in $VENV"
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print("tensorflow", tf.__version__, "built with CUDA:", tf.test.is_built_with_cuda())
for g in gpus:
    print("GPU:", tf.config.experimental.get_device_details(g).get("device_name", g.name))
if not gpus:
    print("WARNING: no GPU visible; the numbers below will be CPU numbers")
EOF

if [[ ! -d "$REPO/datasets/build/train" ]]; then
    say "no dataset yet: course data build"
    "$VENV/bin/course" data build || fail "course data build failed"
fi

say "running bench/reference_runtime.py --profile $PROFILE --weights $WEIGHTS"
"$VPY" bench/reference_runtime.py --profile "$PROFILE" --weights "$WEIGHTS" \
    || fail "the benchmark failed (see the notebook error above)"
say "done: per-part times above; results in bench/RESULTS.md (gpu section) and bench/out/"
