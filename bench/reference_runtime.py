"""Benchmark the reference (source) notebook: wall time per part, CPU seconds, peak memory.

Runs ``source/cnn_transfer/cnn_transfer.ipynb`` with solutions under nbclient in a
fresh kernel, once with stand-in weights and once more with the real ImageNet file
when the weights cache holds a verified one. Parts are the code cells' tags
(``setup``, ``part0-data`` ... ``part5-finetune``), timed from this process around
each cell. CPU seconds and peak RSS are those of the kernel's process tree, sampled
every 0.1 s (the peak of a spike shorter than that can be missed).

Writes ``bench/out/reference_runtime-<profile>-<weights>.json`` and replaces its own
section of ``bench/RESULTS.md`` (other benchmarks' sections are kept). It measures;
it does not judge: compare numbers only across runs of the same machine, and read
the load average printed next to them (other work on the machine stretches wall
time, not CPU seconds).

    .venv/bin/python bench/reference_runtime.py [--profile full] [--weights auto|stand-in|imagenet]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.course.config import load_course  # noqa: E402
from autograder.course.datasets import build_dataset, student_splits_dir  # noqa: E402
from autograder.course.weights import MD5_OK, weights_status  # noqa: E402
from autograder.errors import CourseError  # noqa: E402

ASSIGNMENT = "cnn_transfer"
DEVICE_MARK = "BENCH-DEVICE::"
DEVICE_CELL = f"""
import json as _json, platform as _platform
_gpus = tf.config.list_physical_devices("GPU")
_names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in _gpus]
print("{DEVICE_MARK}" + _json.dumps({{"tensorflow": tf.__version__, "keras": keras.__version__,
      "gpus": _names, "python": _platform.python_version()}}))
"""
SECTION_BEGIN = "<!-- reference-runtime:{key}:begin -->"
SECTION_END = "<!-- reference-runtime:{key}:end -->"


@dataclass
class BenchResult:
    """One run of the reference notebook."""

    profile: str
    weights: str
    """``stand-in`` or ``imagenet``."""
    parts_s: dict[str, float]
    """Wall seconds per part (cell tag), in notebook order."""
    kernel_start_s: float
    total_wall_s: float
    """Kernel start to last cell, as a student would wait."""
    cpu_s: float
    """User + system CPU seconds of the kernel's process tree."""
    peak_rss_mb: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    device: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    finished_utc: str = ""


class TreeSampler(threading.Thread):
    """Samples RSS and CPU time of a process and its children until stopped."""

    def __init__(self, pid: int, *, interval_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_rss = 0
        self.cpu_s = 0.0
        self._stop_event = threading.Event()

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss, cpu = 0, 0.0
        for proc in procs:
            try:
                rss += proc.memory_info().rss
                t = proc.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                continue
        self.peak_rss = max(self.peak_rss, rss)
        self.cpu_s = max(self.cpu_s, cpu)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop_event.set()


def machine_description() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores_available": len(os.sched_getaffinity(0)),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def run_once(*, profile: str, weights: str, weights_dir: Path | None) -> BenchResult:
    from nbclient import NotebookClient

    course = load_course(REPO)
    assignment = course.config.assignment(ASSIGNMENT)
    source = course.source_dir(ASSIGNMENT)
    data = student_splits_dir(course)
    if not (data / "train").is_dir():
        print("no dataset yet: running `course data build` once", flush=True)
        build_dataset(course)
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as tmp:
        work = Path(tmp)
        for name in ("course_helpers.py", "settings.json"):
            shutil.copy2(source / name, work / name)
        nb = nbformat.read(source / assignment.notebook, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(DEVICE_CELL))
        env = {**os.environ, "COURSE_PROFILE": profile, "COURSE_WEIGHTS_MODE": weights,
               "COURSE_DATA_DIR": str(data), "TF_CPP_MIN_LOG_LEVEL": "2"}
        if weights_dir is not None:
            env["COURSE_WEIGHTS_DIR"] = str(weights_dir)
        else:  # stand-in: random weights, so no cache lookup can change the run
            env["COURSE_WEIGHTS_DIR"] = str(work / "no-weights")
        client = NotebookClient(nb, timeout=1800, kernel_name="python3",
                                resources={"metadata": {"path": str(work)}})
        load_before = os.getloadavg()
        parts: OrderedDict[str, float] = OrderedDict()
        started = time.perf_counter()
        with client.setup_kernel(env=env):
            kernel_start_s = time.perf_counter() - started
            sampler = TreeSampler(client.km.provisioner.pid)
            sampler.start()
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                part = (cell.metadata.get("tags") or ["bench"])[0]
                t0 = time.perf_counter()
                client.execute_cell(cell, index)
                parts[part] = parts.get(part, 0.0) + time.perf_counter() - t0
            total_wall_s = time.perf_counter() - started
            sampler.stop()
        parts.pop("bench", None)
        device: dict[str, Any] = {}
        for out in nb.cells[-1].get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith(DEVICE_MARK):
                    device = json.loads(line[len(DEVICE_MARK):])
        return BenchResult(
            profile=profile, weights=weights,
            parts_s={k: round(v, 2) for k, v in parts.items()},
            kernel_start_s=round(kernel_start_s, 2), total_wall_s=round(total_wall_s, 2),
            cpu_s=round(sampler.cpu_s, 1), peak_rss_mb=round(sampler.peak_rss / 2**20),
            load_before=tuple(round(x, 2) for x in load_before),
            load_after=tuple(round(x, 2) for x in os.getloadavg()),
            device=device, machine=machine_description(),
            finished_utc=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        )


def render_section(results: list[BenchResult], *, key: str) -> str:
    first = results[0]
    m, d = first.machine, first.device
    gpus = ", ".join(d.get("gpus") or []) or "none (CPU only)"
    lines = [
        SECTION_BEGIN.format(key=key),
        f"## Reference notebook runtime ({key})",
        "",
        f"`bench/reference_runtime.py`, {first.finished_utc}. Machine: {m['cpu']}, "
        f"{m['cores_available']} cores available, {m['memory_gb']} GB RAM; GPU: {gpus}; "
        f"TensorFlow {d.get('tensorflow', '?')}, Keras {d.get('keras', '?')}, Python {m['python']}.",
        "",
        "| profile | weights | " + " | ".join(first.parts_s) + " | kernel start | total wall | CPU | peak RSS | load before / after |",
        "|---|---|" + "---:|" * (len(first.parts_s) + 4) + "---|",
    ]
    for r in results:
        cells = " | ".join(f"{v:.1f} s" for v in r.parts_s.values())
        lines.append(
            f"| {r.profile} | {r.weights} | {cells} | {r.kernel_start_s:.1f} s | "
            f"**{r.total_wall_s:.1f} s** | {r.cpu_s:.0f} CPU-s | {r.peak_rss_mb / 1024:.2f} GB | "
            f"{r.load_before[0]:.1f} / {r.load_after[0]:.1f} |")
    lines += [
        "",
        "Parts are the code cells' tags; wall times stretch when other work shares the "
        "cores (see the load averages), CPU seconds much less. Stand-in weights are "
        "untrained: their accuracies are not ImageNet results, their runtimes are the same. "
        "(This section holds only what this run measured.)",
        SECTION_END.format(key=key),
    ]
    return "\n".join(lines) + "\n"


def update_results(path: Path, section: str, *, key: str) -> None:
    text = path.read_text() if path.is_file() else "# Benchmarks\n\nMeasured by the scripts in bench/.\n"
    begin, end = SECTION_BEGIN.format(key=key), SECTION_END.format(key=key)
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="full")
    parser.add_argument("--weights", choices=("auto", "stand-in", "imagenet"), default="auto",
                        help="auto: stand-in, plus imagenet when the cache has the verified file")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--key", default=None,
                        help="section of RESULTS.md to replace (default: cpu or gpu)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    course = load_course(REPO)
    status = weights_status(course)
    modes: list[tuple[str, Path | None]] = []
    if args.weights in ("auto", "stand-in"):
        modes.append(("stand-in", None))
    if args.weights == "imagenet" or (args.weights == "auto" and status.md5_state == MD5_OK):
        if status.md5_state != MD5_OK:
            print(f"no verified weights at {status.path} ({status.md5_state}); "
                  "seed them with `course weights import FILE`", file=sys.stderr)
            return 2
        modes.append(("imagenet", status.path.parent))
    elif args.weights == "auto":
        print(f"imagenet run skipped: weights {status.md5_state} at {status.path}", flush=True)

    results = []
    for weights, folder in modes:
        print(f"running the reference notebook: profile {args.profile}, {weights} weights ...",
              flush=True)
        try:
            result = run_once(profile=args.profile, weights=weights, weights_dir=folder)
        except CourseError as exc:
            print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
            return 2
        results.append(result)
        print(json.dumps(asdict(result), indent=2), flush=True)
        out = REPO / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"reference_runtime-{args.profile}-{weights}.json").write_text(
            json.dumps(asdict(result), indent=2) + "\n")
    key = args.key or ("gpu" if results and results[0].device.get("gpus") else "cpu")
    section = render_section(results, key=key)
    print(section)
    if not args.no_write:
        update_results(args.results, section, key=key)
        print(f"updated {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
