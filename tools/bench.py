"""Benchmark the offline plan: median wall time of `python -m tools.plan STACK --json`.

    python -m tools.bench [--runs N]

Times the lab stack and generated stacks of 30 and 60 nodes (7 servers, the rest agents), each
as a fresh process, as a user or CI would run it. Targets on a 2-core machine: lab under 3 s,
30 nodes under 6 s, and a per-node cost that stays flat as the stack grows. A benchmark to read,
not a test that fails.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from tools.render import ROOT

TARGETS = {"lab": 3.0, "30 nodes": 6.0}


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


def time_plan(arguments: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tools.plan", *arguments, "--json"], cwd=ROOT, check=True, capture_output=True
        )
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    results: dict[str, tuple[int, float]] = {"lab": (6, time_plan(["lab"], args.runs))}
    with tempfile.TemporaryDirectory() as directory:
        for nodes in (30, 60):
            path = Path(directory) / f"Pulumi.bench{nodes}.yaml"
            path.write_text(yaml.safe_dump(generated_stack(nodes)))
            results[f"{nodes} nodes"] = (nodes, time_plan([f"bench{nodes}", "--config-file", str(path)], args.runs))

    print(f"offline plan, median of {args.runs} runs (fresh process each):")
    for label, (nodes, seconds) in results.items():
        target = f"  target < {TARGETS[label]:.0f} s" if label in TARGETS else ""
        print(f"  {label:>9}: {seconds:6.2f} s  ({nodes} nodes){target}")
    (_, lab), (_, thirty), (_, sixty) = results.values()
    early, late = (thirty - lab) / 24 * 1000, (sixty - thirty) / 30 * 1000
    print(f"  per extra node: {early:.1f} ms (6->30), {late:.1f} ms (30->60)")
    return 0


if __name__ == "__main__":
    from tools.cli import run

    run(main)
