"""On a machine with a real NVIDIA GPU: does the grading sandbox hand the GPU to a GPU
assignment's kernel, and to no other? And what does the notebook's compute cost there?

Run as root on the GPU machine, from the repository root, with any Python >= 3.11 that has
PyTorch with CUDA (the check's CUDA program; the sandbox code itself needs only the standard
library)::

    python3 bench/gpu_sandbox_check.py --out DIR [--site DIR] [--skip-port]

It builds the kernel's command with the grader's own code (``sandbox.build_sandbox_argv``,
``sandbox.gpu_devices``, ``stage.prepare_job_dir``, a real cgroup where the host has one)
and starts, as an unprivileged slot uid under bubblewrap with every capability dropped:

1. a probe with the GPU's device nodes (a GPU assignment): which ``/dev`` nodes it sees,
   whether CUDA works, a bf16 matrix product's rate, whether it can create a node;
2. the same probe without them (a CPU assignment of the same course);
3. where 1 finds no CUDA driver and the host's loader needs ``LD_LIBRARY_PATH`` to find
   ``libcuda.so.1``, the probe again with that variable (what a GPU host must pass on);
4. unless ``--skip-port``: ``bench/gpu_keras_port.py`` (the reference notebook's compute in
   Keras 3 on the torch backend) outside the sandbox and inside it with the GPU, and on the
   JAX backend outside, to see the sandbox's cost on a GPU.

``--site`` is a folder of extra packages (Keras and its small needs, when the machine has
none) put on ``PYTHONPATH`` inside and out. Writes ``DIR/gpu_sandbox_check.json``; prints
each step as it goes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.errors import SandboxUnavailable  # noqa: E402
from autograder.grading import sandbox, stage  # noqa: E402
from autograder.grading.sandbox_users import ensure_sandbox_users  # noqa: E402

PREFIX = "gpucheck-sbx"
MARK = "PROBE::"
PROBE = r"""
import json, os, sys, time
r = {"uid": os.getuid(), "python": sys.executable,
     "dev_nvidia": sorted(n for n in os.listdir("/dev") if n.startswith("nvidia")),
     "caps": sorted(os.listdir("/dev/nvidia-caps")) if os.path.isdir("/dev/nvidia-caps") else [],
     "ld_library_path": os.environ.get("LD_LIBRARY_PATH")}
try:
    open("/dev/planted", "w")
    r["dev_writable"] = True
except OSError as exc:
    r["dev_writable"] = exc.strerror
try:
    import torch
    r["cuda_available"] = torch.cuda.is_available()
    if r["cuda_available"]:
        r["device"] = torch.cuda.get_device_name(0)
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):
            b = a @ a
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(10):
            b = a @ a
        torch.cuda.synchronize()
        r["bf16_tflops"] = round(10 * 2 * 8192 ** 3 / (time.perf_counter() - t) / 1e12)
except Exception as exc:
    r["error"] = repr(exc)[:400]
print("PROBE::" + json.dumps(r), flush=True)
"""


def say(text: str) -> None:
    print(f"[gpu_sandbox_check] {text}", flush=True)


def host_facts() -> dict:
    facts: dict = {"python": sys.executable, "prefix": sys.prefix,
                   "base_prefix": sys.base_prefix, "real_python": str(Path(sys.executable).resolve()),
                   "ld_library_path": os.environ.get("LD_LIBRARY_PATH")}
    for name, cmd in (("nvidia_smi", ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                      "--format=csv,noheader"]),
                      ("kernel", ["uname", "-r"]),
                      ("bwrap", [sandbox.BWRAP, "--version"]),
                      ("libcuda_in_ld_cache", ["sh", "-c", "ldconfig -p | grep -E 'libcuda\\.so'"]),
                      ("dev_nvidia", ["sh", "-c", "ls -l /dev/nvidia* /dev/nvidia-caps 2>&1"]),
                      ("cgroup", ["sh", "-c", "stat -fc %T /sys/fs/cgroup; cat /proc/self/cgroup"]),
                      ("os", ["sh", "-c", "grep PRETTY_NAME /etc/os-release"])):
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            facts[name] = (run.stdout + run.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            facts[name] = f"unavailable: {exc}"
    try:
        import torch  # noqa: PLC0415
        facts["torch"] = torch.__version__
        facts["host_cuda_available"] = torch.cuda.is_available()
    except Exception as exc:  # noqa: BLE001 (a fact to report)
        facts["torch"] = f"unavailable: {exc!r}"
    return facts


def in_sandbox(user, argv, *, name, devices, extra_env, ro_binds=(), timeout=300) -> dict:
    """Run ``argv`` the way the grader runs a kernel; return rc, seconds, output."""
    layout = stage.JobLayout.for_job(Path("/tmp/gpucheck") / name, name=f"gpucheck-{name}")
    stage.prepare_job_dir(layout, user=user, disk_mb=4096)
    binds = [(stage.stage_readonly(layout, host), inside) for host, inside in ro_binds]
    base = Path(sys.base_prefix)
    if not base.is_relative_to("/usr"):
        # An interpreter installed outside /usr (the venv's base): the sandbox shows only /usr
        # and the venv, so its base goes in too, as a GPU host's image would have it in /usr.
        binds.append((stage.stage_readonly(layout, base), str(base)))
    note = None
    try:
        group = sandbox.create_cgroup(f"gpucheck-{name}-{os.getpid()}", memory_mb=65536,
                                      max_processes=4096)
    except SandboxUnavailable as exc:
        group, note = None, f"no cgroup: {exc.message}"
    env = sandbox.kernel_environment(work_dir=stage.INSIDE_WORK, tmp_dir=stage.INSIDE_TMP,
                                     extra=extra_env)
    full = sandbox.build_sandbox_argv(argv, user=user, layout=layout, ro_binds=binds, env=env,
                                      cgroup=group, file_size_mb=2048, devices=devices)
    start = time.perf_counter()
    try:
        run = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
        rc, out = run.returncode, run.stdout + run.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = "timeout", str(exc.stdout or "") + str(exc.stderr or "")
    seconds = round(time.perf_counter() - start, 2)
    if group is not None:
        group.kill_all()
        group.remove()
    stage.release_job_dir(layout)
    return {"rc": rc, "seconds": seconds, "cgroup": note or "yes", "output": out}


def probe_result(run: dict) -> dict:
    for line in run["output"].splitlines():
        if line.startswith(MARK):
            return {**json.loads(line[len(MARK):]), "rc": run["rc"], "seconds": run["seconds"],
                    "cgroup": run["cgroup"]}
    return {"rc": run["rc"], "no_probe_line": run["output"][-3000:]}


def last_json(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--site", type=Path)
    parser.add_argument("--skip-port", action="store_true")
    parser.add_argument("--backends", default="torch,jax",
                        help="Keras backends for the port; the first also runs sandboxed")
    parser.add_argument("--dev", type=Path, default=Path("/dev"),
                        help="where to look for the GPU's nodes (a test folder of mknod'ed "
                             "nodes, on a machine without a GPU)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}

    def save() -> None:
        (args.out / "gpu_sandbox_check.json").write_text(json.dumps(result, indent=1) + "\n")

    result["host"] = host_facts()
    say(json.dumps(result["host"], indent=1))
    save()
    user = ensure_sandbox_users(PREFIX, 1)[0]
    missing = sandbox.probe_sandbox(prefix=PREFIX, slots=1)
    result["sandbox_probe_missing"] = missing
    say(f"sandbox probe: {missing or 'complete'}")
    try:
        devices = sandbox.gpu_devices(args.dev)
    except SandboxUnavailable as exc:
        result["gpu_devices"] = f"refused: {exc.message}"
        save()
        say(result["gpu_devices"])
        return 1
    result["gpu_devices"] = [str(host) for host, _ in devices]
    say(f"GPU device nodes passed to a GPU assignment: {result['gpu_devices']}")

    site_env = {}
    site_binds = []
    if args.site:
        for p in (args.site, *args.site.rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        site_binds = [(args.site, "/opt/site")]
        site_env = {"PYTHONPATH": "/opt/site"}
    python = [sys.executable, "-c", PROBE]
    result["gpu_assignment"] = probe_result(in_sandbox(
        user, python, name="gpu", devices=devices, extra_env={}))
    say(f"GPU assignment: {result['gpu_assignment']}")
    result["cpu_assignment"] = probe_result(in_sandbox(
        user, python, name="cpu", devices=(), extra_env={}))
    say(f"CPU assignment: {result['cpu_assignment']}")
    ld_path = os.environ.get("LD_LIBRARY_PATH")
    if not result["gpu_assignment"].get("cuda_available") and ld_path:
        result["gpu_assignment_with_ld_library_path"] = probe_result(in_sandbox(
            user, python, name="gpu-ld", devices=devices,
            extra_env={"LD_LIBRARY_PATH": ld_path}))
        say(f"GPU assignment, LD_LIBRARY_PATH passed: "
            f"{result['gpu_assignment_with_ld_library_path']}")
    save()

    if not args.skip_port:
        data = REPO / "datasets" / "build"
        port = REPO / "bench" / "gpu_keras_port.py"
        settings = REPO / "source" / "cnn_transfer" / "settings.json"
        gpu_env = {"LD_LIBRARY_PATH": ld_path} if (
            ld_path and result.get("gpu_assignment_with_ld_library_path", {}).get("cuda_available")
        ) else {}
        runs = {}
        backends = args.backends.split(",")
        for backend in backends:
            env = {**os.environ, "KERAS_BACKEND": backend, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
            if args.site:
                env["PYTHONPATH"] = f"{args.site}:{env.get('PYTHONPATH', '')}"
            start = time.perf_counter()
            try:
                run = subprocess.run([sys.executable, str(port), "--data", str(data)], env=env,
                                     capture_output=True, text=True, timeout=240)
                rc, out = run.returncode, run.stdout + run.stderr
            except subprocess.TimeoutExpired as exc:
                rc, out = "timeout", str(exc.stdout or "") + str(exc.stderr or "")
            runs[f"{backend}_outside"] = {"rc": rc,
                                          "wall_s": round(time.perf_counter() - start, 2),
                                          "result": last_json(out), "tail": out[-1500:]}
            say(f"port, {backend}, outside the sandbox: {runs[f'{backend}_outside']}")
            save()
            if backend == backends[0]:
                run = in_sandbox(
                    user, [sys.executable, "/sandbox/work/port.py", "--data", "/sandbox/work/data",
                           "--settings", "/sandbox/work/settings.json"],
                    name="port", devices=devices,
                    extra_env={"KERAS_BACKEND": backend, **site_env, **gpu_env},
                    ro_binds=[*site_binds, (port, "/sandbox/work/port.py"),
                              (data, "/sandbox/work/data"),
                              (settings, "/sandbox/work/settings.json")], timeout=240)
                runs[f"{backend}_sandboxed"] = {"rc": run["rc"], "wall_s": run["seconds"],
                                           "result": last_json(run["output"]),
                                           "tail": run["output"][-1500:]}
                say(f"port, {backend}, in the sandbox with the GPU: {runs[f'{backend}_sandboxed']}")
                save()
        result["keras_port"] = runs
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
