"""Benchmark the offline plan: median wall and CPU time of `python -m tools.plan STACK --json`.

    python -m tools.bench [--runs N]

Times the lab stack and generated stacks of 30 and 60 nodes (7 servers, the rest agents), each
as a fresh process, as a user or CI would run it. CPU time is the process's user + system time,
which another job on the machine changes far less than it changes the wall time: the load
average is printed alongside. Targets on an idle 2-core machine: lab within 1.5 s and 0.8 CPU-s,
30 nodes within 6 s, and a per-node cost that stays flat as the stack grows. A benchmark to
read, not a test that fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from tools.render import ROOT

# Wall seconds, CPU seconds (None: no target).
TARGETS: dict[str, tuple[float, float | None]] = {"lab": (1.5, 0.8), "30 nodes": (6.0, None)}


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def generated_stack(nodes: int) -> dict[str, object]:
    servers = min(7, nodes if nodes % 2 else nodes - 1)
    return {
        "config": {
            "meshlab:servers": [f"server{i}=192.168.56.{10 + i}" for i in range(1, servers + 1)],
            "meshlab:agents": [f"agent{i}=192.168.56.{20 + i}" for i in range(1, nodes - servers + 1)],
            "meshlab:hostOnlyCidr": "192.168.56.0/24",
            "meshlab:apiVip": "192.168.56.10",
            "meshlab:metallbPool": "192.168.56.200-192.168.56.250",
        }
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_plan(arguments: list[str], runs: int) -> Timing:
    walls, cpus = [], []
    for _ in range(runs):
        cpu, start = _children_cpu(), time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tools.plan", *arguments, "--json"], cwd=ROOT, check=True, capture_output=True
        )
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu)
    return Timing(statistics.median(walls), statistics.median(cpus))


def target_text(label: str) -> str:
    if label not in TARGETS:
        return ""
    wall, cpu = TARGETS[label]
    return f"  target <= {wall:g} s" + (f", <= {cpu:g} CPU-s" if cpu is not None else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    results: dict[str, tuple[int, Timing]] = {"lab": (6, time_plan(["lab"], args.runs))}
    with tempfile.TemporaryDirectory() as directory:
        for nodes in (30, 60):
            path = Path(directory) / f"Pulumi.bench{nodes}.yaml"
            path.write_text(yaml.safe_dump(generated_stack(nodes)))
            results[f"{nodes} nodes"] = (nodes, time_plan([f"bench{nodes}", "--config-file", str(path)], args.runs))

    print(
        f"offline plan, median of {args.runs} runs (fresh process each; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs):"
    )
    for label, (nodes, timing) in results.items():
        print(f"  {label:>9}: {timing.wall:6.2f} s  {timing.cpu:6.2f} CPU-s  ({nodes} nodes){target_text(label)}")
    (_, lab), (_, thirty), (_, sixty) = results.values()
    for measure in ("wall", "cpu"):
        early = (getattr(thirty, measure) - getattr(lab, measure)) / 24 * 1000
        late = (getattr(sixty, measure) - getattr(thirty, measure)) / 30 * 1000
        unit = "ms" if measure == "wall" else "CPU-ms"
        print(f"  per extra node: {early:.1f} {unit} (6->30), {late:.1f} {unit} (30->60)")
    return 0


if __name__ == "__main__":
    from tools.cli import run

    run(main)
