"""Where one grade's CPU goes, next to a plain ``jupyter nbconvert --execute`` of the same
notebook: process accounting (``acct``) of each arm, CPU-seconds summed per user and command.

The users tell the parts apart: a grade's sandboxed kernel runs as a sandbox uid, its confined
checker as ``nobody``, the ``course`` process and its helpers as the grader; nbconvert's kernel
runs as the caller. Both arms use ``bench/grade_vs_nbconvert.py``'s throwaway course root,
settings and preparation (the key and the embeddings cache, made outside the measured part),
and run one after the other with nothing else measured in between. Process accounting is
machine-wide: run it on a quiet machine.

    apt-get install acct   # accton and lastcomm
    .venv/bin/python bench/cpu_split.py [--profile reduced|full] [--rounds 2]

Prints a Markdown table per arm and round (bench/RESULTS.md is edited by hand).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grade_vs_nbconvert import make_root, prepare, run_grade, run_nbconvert  # noqa: E402

# lastcomm: command, flags, user, tty, "0.35 secs", start time
LINE = re.compile(r"^(?P<comm>.{1,16}?)\s+(?P<flags>[SFCDX ]*)\s+(?P<user>\S+)\s+\S+\s+"
                  r"(?P<cpu>[0-9.]+) secs")


def accounted(run, acct_file: Path):
    """Run ``run()`` with process accounting into ``acct_file``; its result and the CPU-seconds
    of every process that ended meanwhile, per (user, command)."""
    acct_file.write_bytes(b"")
    subprocess.run(["accton", str(acct_file)], check=True, capture_output=True)
    try:
        result = run()
    finally:
        subprocess.run(["accton", "off"], check=True, capture_output=True)
    listing = subprocess.run(["lastcomm", "-f", str(acct_file)], check=True,
                             capture_output=True, text=True).stdout
    cpu: dict[tuple[str, str], float] = collections.Counter()
    for line in listing.splitlines():
        m = LINE.match(line)
        if m:
            cpu[(m["user"], m["comm"].strip())] += float(m["cpu"])
    return result, cpu


def table(title: str, cpu: dict[tuple[str, str], float], wall: float) -> str:
    rows = sorted(cpu.items(), key=lambda kv: -kv[1])
    lines = [f"**{title}**: wall {wall:.1f} s, CPU {sum(cpu.values()):.1f} s (accounted)", "",
             "| user | command | CPU-s |", "|---|---|---:|"]
    lines += [f"| {u} | {c} | {s:.2f} |" for (u, c), s in rows if s >= 0.05]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("full", "reduced"), default="reduced")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if not (shutil.which("accton") and shutil.which("lastcomm")):
        print("needs accton and lastcomm: apt-get install acct", file=sys.stderr)
        return 2

    from autograder.course.samples import write_samples

    bench = make_root("bench-cpu-split-")
    scratch = Path(tempfile.mkdtemp(prefix="acct-"))
    try:
        notebook = write_samples(bench.source_notebook, bench.root / "samples",
                                 names=["reference"])["reference"]
        for p in (notebook.parent.parent, notebook.parent, notebook):
            p.chmod(0o755 if p.is_dir() else 0o644)
        print(f"prepared: {prepare(bench, args.profile)}", flush=True)
        print(f"commit {bench.commit}, profile {args.profile}\n")
        for n in range(args.rounds):
            arms = ["nbconvert", "grade"] if n % 2 == 0 else ["grade", "nbconvert"]
            for arm in arms:
                if arm == "nbconvert":
                    (wall, _, _), cpu = accounted(
                        lambda: run_nbconvert(bench, notebook, args.profile), scratch / "acct")
                else:
                    (wall, _, _, score), cpu = accounted(
                        lambda: run_grade(bench, notebook, args.profile), scratch / "acct")
                    arm = f"grade ({score})"
                print(table(f"round {n + 1}, {arm}", cpu, wall) + "\n", flush=True)
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(bench.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
