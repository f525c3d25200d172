#!/usr/bin/env bash
# The one prepared command for a lent GPU machine that has no TensorFlow and no registry (this
# workplace's device machine): bubblewrap from a carried Debian package when the machine has
# none, Keras from carried wheels, then bench/gpu_sandbox_check.py. Everything it prints is
# also in $OUT/log.txt; the check's figures are in $OUT/gpu_sandbox_check.json.
#
# Here, once:   mkdir -p .whl && (cd .whl && apt-get download bubblewrap)
#               pip download --no-deps --only-binary=:all: --python-version 3.12 \
#                   --platform manylinux_2_28_x86_64 -d .whl keras==3.15.1 namex optree
# There:        bash bench/gpu_device_run.sh   (carry: .whl and datasets/build)
set -u
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
{
    echo "== $(date -u '+%F %T UTC') in $(pwd), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    if [[ ! -x /usr/bin/bwrap ]]; then
        deb=$(ls .whl/bubblewrap_*.deb 2>/dev/null | head -1)
        if [[ -n "$deb" ]]; then
            dpkg -x "$deb" /tmp/bw && install -m 755 /tmp/bw/usr/bin/bwrap /usr/bin/bwrap \
                && echo "bwrap installed from $deb"
        fi
    fi
    for tool in bwrap setpriv prlimit useradd mount nvidia-smi; do
        command -v "$tool" >/dev/null || echo "missing: $tool"
    done
    if ! command -v useradd >/dev/null && ! getent passwd gpucheck-sbx0 >/dev/null; then
        echo "gpucheck-sbx0:x:961:961::/nonexistent:/usr/sbin/nologin" >>/etc/passwd
        echo "gpucheck-sbx0:x:961:" >>/etc/group
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || echo "the carried wheels did not install"
    PYTHONUNBUFFERED=1 timeout "${CHECK_TIMEOUT:-420}" \
        python3 bench/gpu_sandbox_check.py --out "$OUT" --site /tmp/site
    echo "== check exited $? at $(date -u '+%T UTC')"
} 2>&1 | tee "$OUT/log.txt"
