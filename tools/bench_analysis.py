"""The pure half of `tools.bench_mesh`: parse fortio's JSON and Prometheus' query answers, summarise
repetitions, and write the report and the latency plot. No cluster, no subprocess, no clock: every
function here takes what the runner recorded, so the tests feed it recorded responses.

The design's figures (meshlab's design, section 7, quoted in issue 17) are the comparison baseline.
They come from two sources that do not agree with each other: the +166 % (sidecar) and +8 % (ztunnel)
p99 overheads over no mesh cannot both hold in either p99 column (they imply a no-mesh p99 of about
3.3 ms, which makes ambient +104 % on Cilium and sidecars +42 % on the kube CNI). The report prints
them as given and the measured overheads beside them.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The design's conditions: 1 KB payload, HTTP/1.1, 1,000 requests per second over 2 connections.
PAYLOAD_BYTES = 1024
QPS = 1000
CONNECTIONS = 2
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
CASE_TITLES = {
    "none": "no mesh",
    "sidecar": "sidecar (Envoy)",
    "ambient": "ambient (ztunnel)",
    "waypoint": "ambient + waypoint",
}
# Design p99 with mTLS, ms, per CNI column; and p99 overhead over no mesh, percent.
DESIGN_P99_MS: dict[str, dict[str, float]] = {
    "sidecar": {"kube CNI": 4.72, "Cilium": 8.80},
    "ambient": {"kube CNI": 3.60, "Cilium": 6.80},
}
DESIGN_OVERHEAD_PERCENT = {"sidecar": 166.0, "ambient": 8.0}
# Design proxy cost at those conditions: (vCPU, MB).
DESIGN_RESOURCES: dict[str, tuple[float, float]] = {
    "sidecar": (0.20, 60.0),
    "waypoint": (0.25, 60.0),
    "ztunnel": (0.06, 12.0),
}
PROXY_TITLES = {"sidecar": "sidecar (per pod)", "waypoint": "waypoint", "ztunnel": "ztunnel (per node)"}
ROLLBACK_BUDGET_SECONDS = 300.0
AVAILABILITY_TARGET = 0.999


class FormatError(ValueError):
    """An answer that is not what the format's documentation describes."""


# --- fortio -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    start_ms: float
    end_ms: float
    count: int


@dataclass(frozen=True)
class LoadResult:
    """One `fortio load -json -` run (fortio's HTTPRunnerResults; durations in seconds there, ms here)."""

    case: str
    repetition: int
    percentiles_ms: dict[float, float]
    buckets: list[Bucket]
    count: int
    errors: int
    actual_qps: float
    duration_s: float


def parse_fortio(text: str, case: str, repetition: int) -> LoadResult:
    """fortio's JSON result: `DurationHistogram` (Count, Data buckets, Percentiles), `RetCodes`,
    `ActualQPS`, `ActualDuration` (nanoseconds). Anything before the first `{` (log lines) is skipped."""
    start = text.find("{")
    if start < 0:
        raise FormatError(f"{case} #{repetition}: no JSON object in fortio's output")
    try:
        body = json.loads(text[start:])
        histogram = body["DurationHistogram"]
        percentiles = {float(p["Percentile"]): float(p["Value"]) * 1000 for p in histogram["Percentiles"]}
        buckets = [Bucket(float(b["Start"]) * 1000, float(b["End"]) * 1000, int(b["Count"])) for b in histogram["Data"]]
        codes = {str(code): int(n) for code, n in body.get("RetCodes", {}).items()}
        count = int(histogram["Count"])
        qps, duration = float(body["ActualQPS"]), float(body["ActualDuration"]) / 1e9
    except (KeyError, TypeError, ValueError) as error:
        raise FormatError(f"{case} #{repetition}: not fortio's result format ({error!r})") from error
    missing = [p for p in PERCENTILES if p not in percentiles]
    if missing:
        raise FormatError(f"{case} #{repetition}: fortio reported no p{missing[0]:g} (run it with -p)")
    return LoadResult(case, repetition, percentiles, buckets, count, count - codes.get("200", 0), qps, duration)


# --- Prometheus -------------------------------------------------------------------------------------


def parse_vector(text: str) -> list[tuple[dict[str, str], float]]:
    """An `/api/v1/query` answer of resultType vector: [(labels, value)]."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise FormatError(f"not JSON: {error}") from error
    if body.get("status") != "success":
        raise FormatError(f"Prometheus answered {body.get('status')}: {body.get('errorType')}: {body.get('error')}")
    data = body.get("data", {})
    if data.get("resultType") != "vector":
        raise FormatError(f"expected an instant vector, got {data.get('resultType')}")
    return [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]


@dataclass(frozen=True)
class ProxySelector:
    """Where one proxy kind's containers are, as cAdvisor labels them."""

    proxy: str
    namespace: str
    container: str
    pod_regex: str = ".+"
    node_regex: str = ".+"

    def _labels(self) -> str:
        return (
            f'namespace="{self.namespace}",container="{self.container}",'
            f'pod=~"{self.pod_regex}",node=~"{self.node_regex}"'
        )

    def cpu_query(self, window_s: int) -> str:
        """vCPU per pod, averaged over the window (cores)."""
        return f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{self._labels()}}}[{window_s}s]))"

    def memory_query(self, window_s: int) -> str:
        """Peak working set per pod over the window (bytes)."""
        return f"max by (pod) (max_over_time(container_memory_working_set_bytes{{{self._labels()}}}[{window_s}s]))"


@dataclass(frozen=True)
class ProxyUsage:
    proxy: str
    repetition: int
    vcpu: float
    memory_mb: float
    pods: int


def proxy_usage(proxy: str, repetition: int, cpu_answer: str, memory_answer: str) -> ProxyUsage | None:
    """The mean per pod of one proxy kind (e.g. the two sidecars, client and server); None when no pod matched."""
    cpu = [value for _, value in parse_vector(cpu_answer)]
    memory = [value for _, value in parse_vector(memory_answer)]
    if not cpu or not memory:
        return None
    return ProxyUsage(proxy, repetition, statistics.fmean(cpu), statistics.fmean(memory) / 1e6, len(cpu))


# --- summary ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """Median and range over repetitions."""

    median: float
    low: float
    high: float

    @staticmethod
    def of(values: Iterable[float]) -> Spread:
        items = sorted(values)
        if not items:
            raise ValueError("no values")
        return Spread(statistics.median(items), items[0], items[-1])

    def text(self, digits: int = 2) -> str:
        if len({self.low, self.high}) == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


@dataclass
class BenchmarkRun:
    """Everything the runner recorded, ready to report."""

    stack: str
    duration_s: int
    repetitions: int
    server_node: str
    client_node: str
    loads: list[LoadResult] = field(default_factory=list)
    usage: list[ProxyUsage] = field(default_factory=list)

    def cases(self) -> list[str]:
        return [case for case in CASE_TITLES if any(load.case == case for load in self.loads)]

    def percentile(self, case: str, percentile: float) -> Spread:
        return Spread.of(load.percentiles_ms[percentile] for load in self.loads if load.case == case)

    def overhead_percent(self, case: str, percentile: float = 99.0) -> float | None:
        """Median p99 of `case` over the median p99 without a mesh, minus one, in percent."""
        if case == "none" or "none" not in self.cases() or case not in self.cases():
            return None
        baseline = self.percentile("none", percentile).median
        return (self.percentile(case, percentile).median / baseline - 1) * 100

    def resources(self, proxy: str) -> tuple[Spread, Spread] | None:
        samples = [usage for usage in self.usage if usage.proxy == proxy]
        if not samples:
            return None
        return Spread.of(u.vcpu for u in samples), Spread.of(u.memory_mb for u in samples)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0f} %"


def report_markdown(run: BenchmarkRun, plot_name: str | None = "latency.png") -> str:
    cases = run.cases()
    lines = [
        f"# Mesh benchmark: stack `{run.stack}`",
        "",
        f"Conditions: {PAYLOAD_BYTES} B payload, HTTP/1.1, {QPS} requests/s over {CONNECTIONS} connections, "
        f"{run.duration_s} s per run, {run.repetitions} repetitions per data path. Servers on `{run.server_node}`, "
        f"clients on `{run.client_node}`. Measured values: median over repetitions (min-max).",
        "",
        "## p99 latency with mTLS: the design's figures and this lab's",
        "",
        "| data path | design, kube CNI (ms) | design, Cilium (ms) | measured (ms) | design over no mesh "
        "| measured over no mesh |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case in cases:
        design = DESIGN_P99_MS.get(case, {})
        lines.append(
            f"| {CASE_TITLES[case]} | {design.get('kube CNI', '-')} | {design.get('Cilium', '-')} "
            f"| {run.percentile(case, 99.0).text()} | "
            f"{_percent(DESIGN_OVERHEAD_PERCENT.get(case)) if case in DESIGN_OVERHEAD_PERCENT else '-'} "
            f"| {_percent(run.overhead_percent(case)) if case != 'none' else '-'} |"
        )
    if "sidecar" in cases and "ambient" in cases:
        change = (run.percentile("ambient", 99.0).median / run.percentile("sidecar", 99.0).median - 1) * 100
        lines += ["", f"Sidecar to ambient, p99: design about -23 %, measured {change:+.0f} %."]
    lines += [
        "",
        "## Latency percentiles (ms)",
        "",
        "| data path | p50 | p90 | p99 | p99.9 | achieved requests/s | non-200 answers |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in cases:
        loads = [load for load in run.loads if load.case == case]
        cells = " | ".join(run.percentile(case, p).text() for p in PERCENTILES)
        qps = Spread.of(load.actual_qps for load in loads).text(0)
        lines.append(f"| {CASE_TITLES[case]} | {cells} | {qps} | {sum(load.errors for load in loads)} |")
    lines += [
        "",
        f"## Proxy CPU and memory at {QPS} requests/s: the design's figures and this lab's",
        "",
        "| proxy | design vCPU | measured vCPU | design memory (MB) | measured memory (MB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for proxy, (cpu, memory) in DESIGN_RESOURCES.items():
        measured = run.resources(proxy)
        cpu_text, memory_text = (
            (measured[0].text(3), measured[1].text(0)) if measured else ("not measured", "not measured")
        )
        lines.append(f"| {PROXY_TITLES[proxy]} | {cpu:.2f} | {cpu_text} | {memory:.0f} | {memory_text} |")
    lines += [
        "",
        "CPU is the container's rate of `container_cpu_usage_seconds_total` over each run, memory its peak "
        "working set (cAdvisor, through Prometheus); a sidecar is the mean of the client's and the server's, "
        "ztunnel the mean of the two benchmark nodes'.",
        "",
        "The design's overheads (+166 % sidecar, +8 % ztunnel) do not come from one p99 column: both imply a "
        "no-mesh p99 near 3.3 ms, against which the design's own ambient figure on Cilium (6.80 ms) is +104 %.",
    ]
    if plot_name:
        lines += ["", f"![latency distributions]({plot_name})"]
    return "\n".join(lines) + "\n"


def cumulative(buckets: Sequence[Bucket]) -> tuple[list[float], list[float]]:
    """(bucket end in ms, percent of requests at or below it) of merged buckets."""
    merged: dict[float, int] = {}
    for bucket in buckets:
        merged[bucket.end_ms] = merged.get(bucket.end_ms, 0) + bucket.count
    total = sum(merged.values())
    ends, percents, running = [], [], 0
    for end in sorted(merged):
        running += merged[end]
        ends.append(end)
        percents.append(100 * running / total)
    return ends, percents


def write_plot(run: BenchmarkRun, path: Path) -> None:
    """Latency distributions (cumulative, all repetitions merged), one line per data path, as a PNG."""
    import matplotlib  # noqa: PLC0415 - heavy; only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    for case in run.cases():
        ends, percents = cumulative([b for load in run.loads if load.case == case for b in load.buckets])
        axes.plot(ends, percents, label=CASE_TITLES[case], drawstyle="steps-post")
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("requests at or below (%)")
    axes.set_title(f"{QPS} requests/s, {PAYLOAD_BYTES} B, {CONNECTIONS} connections: stack {run.stack}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


# --- availability -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One request through the ingress: when it was sent (seconds) and whether it got a 2xx."""

    t: float
    ok: bool


@dataclass(frozen=True)
class PhaseStep:
    """A rollout step: from when the user started it to when the stack reported the new phase."""

    started: float
    finished: float
    from_phase: int
    to_phase: int

    @property
    def rollback(self) -> bool:
        return self.to_phase < self.from_phase


@dataclass(frozen=True)
class StepReport:
    step: PhaseStep
    requests: int
    failures: int
    longest_streak: int
    longest_streak_s: float

    @property
    def success_ratio(self) -> float:
        return 1.0 if self.requests == 0 else (self.requests - self.failures) / self.requests

    @property
    def seconds(self) -> float:
        return self.step.finished - self.step.started


def _streak(samples: Sequence[Sample]) -> tuple[int, float]:
    """The longest run of consecutive failures: (requests, seconds from its first to its last)."""
    best, best_s, run, first = 0, 0.0, 0, 0.0
    for sample in samples:
        if sample.ok:
            run = 0
            continue
        if run == 0:
            first = sample.t
        run += 1
        if run > best:
            best, best_s = run, sample.t - first
    return best, best_s


def step_reports(samples: Sequence[Sample], steps: Sequence[PhaseStep], settle_s: float = 30.0) -> list[StepReport]:
    """Per step: the requests sent from its start until `settle_s` after it finished."""
    reports = []
    for step in steps:
        window = [s for s in samples if step.started <= s.t <= step.finished + settle_s]
        streak, streak_s = _streak(window)
        failures = sum(not s.ok for s in window)
        reports.append(StepReport(step, len(window), failures, streak, streak_s))
    return reports


def phase_steps(observed: Sequence[tuple[float, int]], marks: Sequence[float] = ()) -> list[PhaseStep]:
    """Steps from the phases the stack reported over time ((time, phase), in order) and the times the
    user marked a step's start. A step starts at the last mark before its change, or at the previous
    observation when it was not marked."""
    steps: list[PhaseStep] = []
    for (before_t, before), (after_t, after) in itertools.pairwise(observed):
        if after == before:
            continue
        earlier = [mark for mark in marks if mark <= after_t and (not steps or mark >= steps[-1].finished)]
        steps.append(PhaseStep(earlier[-1] if earlier else before_t, after_t, before, after))
    return steps


def availability_markdown(stack: str, samples: Sequence[Sample], reports: Sequence[StepReport]) -> str:
    total = len(samples)
    ok = sum(s.ok for s in samples)
    ratio = 1.0 if total == 0 else ok / total
    overall_streak, overall_streak_s = _streak(samples)
    lines = [
        f"# Availability through the rollout: stack `{stack}`",
        "",
        f"{total} requests through the ingress to the test app, {ok} answered 2xx: "
        f"{100 * ratio:.3f} % (design target {100 * AVAILABILITY_TARGET:.1f} %: "
        f"{'met' if ratio >= AVAILABILITY_TARGET else 'missed'}). Longest error streak: {overall_streak} requests "
        f"over {overall_streak_s:.1f} s.",
        "",
        "| step | took (s) | requests | success | longest error streak | rollback within 5 min |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for report in reports:
        step = report.step
        within = "-" if not step.rollback else ("yes" if report.seconds <= ROLLBACK_BUDGET_SECONDS else "no")
        lines.append(
            f"| {step.from_phase} -> {step.to_phase} | {report.seconds:.0f} | {report.requests} "
            f"| {100 * report.success_ratio:.3f} % | {report.longest_streak} ({report.longest_streak_s:.1f} s) "
            f"| {within} |"
        )
    lines += [
        "",
        "A step runs from the moment it was marked (Enter in the runner) or, unmarked, from the last time the "
        "runner saw the old phase, to the first time the stack's `rolloutPhase` output showed the new one; its "
        "requests include 30 s after that.",
    ]
    return "\n".join(lines) + "\n"


def as_json(run: BenchmarkRun) -> dict[str, Any]:
    """The report's numbers, machine-readable."""
    return {
        "stack": run.stack,
        "p99_ms": {case: vars(run.percentile(case, 99.0)) for case in run.cases()},
        "overhead_percent": {case: run.overhead_percent(case) for case in run.cases() if case != "none"},
        "resources": {
            proxy: {"vcpu": vars(spread[0]), "memory_mb": vars(spread[1])}
            for proxy in DESIGN_RESOURCES
            if (spread := run.resources(proxy))
        },
    }
