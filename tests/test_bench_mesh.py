"""tools.bench_mesh's parsing and reports, on recorded fortio and Prometheus answers
(tests/bench_recorded: written from the formats' documentation, not measurements)."""

from __future__ import annotations

import itertools
import json
import re
import statistics
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from components.apps.benchmark import CASES as CASE_DEFINITIONS
from tools import bench_analysis as analysis
from tools import bench_mesh

RECORDED = Path(__file__).parent / "bench_recorded"
CASES = ("none", "sidecar", "ambient", "waypoint")
PROXIES = ("sidecar", "waypoint", "ztunnel")


def recorded(name: str) -> str:
    return (RECORDED / name).read_text()


def fortio_body(case: str, repetition: int) -> dict[str, Any]:
    text = recorded(f"fortio-{case}-{repetition}.json")
    body: dict[str, Any] = json.loads(text[text.index("{") :])
    return body


def recorded_run(loads: dict[tuple[str, int], str] | None = None) -> analysis.BenchmarkRun:
    run = analysis.BenchmarkRun("lab", 120, 2, "worker1", "worker2")
    for case in CASES:
        for repetition in (1, 2):
            text = (loads or {}).get((case, repetition)) or recorded(f"fortio-{case}-{repetition}.json")
            run.loads.append(analysis.parse_fortio(text, case, repetition))
    for proxy in PROXIES:
        for repetition in (1, 2):
            usage = analysis.proxy_usage(
                proxy,
                repetition,
                recorded(f"prometheus-{proxy}-cpu-{repetition}.json"),
                recorded(f"prometheus-{proxy}-memory-{repetition}.json"),
            )
            assert usage is not None
            run.usage.append(usage)
    return run


def test_fortio_percentiles_and_histogram_are_read_in_milliseconds():
    body = fortio_body("none", 1)
    result = analysis.parse_fortio(json.dumps(body), "none", 1)
    expected = {float(p["Percentile"]): p["Value"] * 1000 for p in body["DurationHistogram"]["Percentiles"]}
    assert result.percentiles_ms == pytest.approx(expected)
    assert [b.count for b in result.buckets] == [b["Count"] for b in body["DurationHistogram"]["Data"]]
    assert result.buckets[-1].end_ms == pytest.approx(body["DurationHistogram"]["Data"][-1]["End"] * 1000)
    assert result.count == body["DurationHistogram"]["Count"]
    assert result.duration_s == pytest.approx(body["ActualDuration"] / 1e9)
    assert result.actual_qps == body["ActualQPS"]


def test_log_lines_before_fortios_json_are_skipped():
    text = recorded("fortio-sidecar-1.json")
    assert not text.startswith("{")
    assert analysis.parse_fortio(text, "sidecar", 1).percentiles_ms[99.0] == pytest.approx(
        fortio_body("sidecar", 1)["DurationHistogram"]["Percentiles"][2]["Value"] * 1000
    )


def test_non_200_answers_count_as_errors():
    body = fortio_body("waypoint", 2)
    result = analysis.parse_fortio(json.dumps(body), "waypoint", 2)
    assert result.errors == sum(n for code, n in body["RetCodes"].items() if code != "200") > 0
    body["RetCodes"] = {"200": body["DurationHistogram"]["Count"]}
    assert analysis.parse_fortio(json.dumps(body), "waypoint", 2).errors == 0


@pytest.mark.parametrize(
    "broken",
    ["no json here", '{"RunType": "HTTP"}', "missing-p99"],
)
def test_a_result_not_in_fortios_format_is_refused(broken):
    if broken == "missing-p99":
        body = fortio_body("none", 1)
        body["DurationHistogram"]["Percentiles"] = [
            p for p in body["DurationHistogram"]["Percentiles"] if p["Percentile"] != 99
        ]
        broken = json.dumps(body)
    with pytest.raises(analysis.FormatError, match="none #1"):
        analysis.parse_fortio(broken, "none", 1)


def test_prometheus_vectors_are_read_and_other_answers_refused():
    answer = json.loads(recorded("prometheus-sidecar-cpu-1.json"))
    parsed = analysis.parse_vector(json.dumps(answer))
    assert parsed == [(item["metric"], float(item["value"][1])) for item in answer["data"]["result"]]
    assert analysis.parse_vector(recorded("prometheus-empty.json")) == []
    with pytest.raises(analysis.FormatError, match="bad_data"):
        analysis.parse_vector(recorded("prometheus-error.json"))
    with pytest.raises(analysis.FormatError, match="matrix"):
        analysis.parse_vector(recorded("prometheus-matrix.json"))


def test_proxy_usage_is_the_mean_per_pod_and_none_without_samples():
    cpu, memory = recorded("prometheus-sidecar-cpu-1.json"), recorded("prometheus-sidecar-memory-1.json")
    usage = analysis.proxy_usage("sidecar", 1, cpu, memory)
    assert usage is not None
    cpus = [float(item["value"][1]) for item in json.loads(cpu)["data"]["result"]]
    memories = [float(item["value"][1]) for item in json.loads(memory)["data"]["result"]]
    assert usage.vcpu == pytest.approx(statistics.fmean(cpus))
    assert usage.memory_mb == pytest.approx(statistics.fmean(memories) / 1e6)
    assert usage.pods == len(cpus) == 2
    assert analysis.proxy_usage("sidecar", 1, recorded("prometheus-empty.json"), memory) is None


def test_queries_select_the_proxy_containers_over_the_run():
    selectors = bench_mesh.selectors("worker1", "worker2")
    ztunnel = selectors["ztunnel"].cpu_query(120)
    assert ztunnel.startswith("sum by (pod) (rate(container_cpu_usage_seconds_total{")
    assert 'namespace="istio-system"' in ztunnel and 'pod=~"ztunnel-.+"' in ztunnel
    assert 'node=~"worker1|worker2"' in ztunnel and ztunnel.endswith("[120s]))")
    assert 'namespace="bench-sidecar",container="istio-proxy"' in selectors["sidecar"].memory_query(60)
    assert "max_over_time(container_memory_working_set_bytes{" in selectors["waypoint"].memory_query(60)


def test_spread_is_the_median_and_range():
    spread = analysis.Spread.of([3.0, 1.0, 2.0, 10.0])
    assert (spread.median, spread.low, spread.high) == (2.5, 1.0, 10.0)
    assert spread.text() == "2.50 (1.00-10.00)"
    assert analysis.Spread.of([4.0]).text(1) == "4.0"


def _p99(case: str, repetition: int) -> float:
    return float(
        next(
            p["Value"]
            for p in fortio_body(case, repetition)["DurationHistogram"]["Percentiles"]
            if p["Percentile"] == 99
        )
        * 1000
    )


def _row(report: str, title: str) -> list[str]:
    [line] = [line for line in report.splitlines() if line.startswith(f"| {title} |")][:1]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_puts_the_design_and_the_measured_p99_side_by_side():
    run = recorded_run()
    report = analysis.report_markdown(run)
    sidecar = _row(report, "sidecar (Envoy)")
    assert sidecar[1:3] == ["4.72", "8.8"]  # the design's two columns, as the issue gives them
    p99 = [_p99("sidecar", 1), _p99("sidecar", 2)]
    assert sidecar[3] == f"{statistics.median(p99):.2f} ({min(p99):.2f}-{max(p99):.2f})"
    none = statistics.median([_p99("none", 1), _p99("none", 2)])
    assert sidecar[4] == "+166 %"
    assert sidecar[5] == f"{(statistics.median(p99) / none - 1) * 100:+.0f} %"
    waypoint = _row(report, "ambient + waypoint")
    assert waypoint[1:3] == ["-", "-"]  # the design gives no waypoint latency
    assert "![latency distributions](latency.png)" in report


def test_an_input_change_moves_the_reported_numbers():
    body = fortio_body("none", 2)
    for percentile in body["DurationHistogram"]["Percentiles"]:
        percentile["Value"] *= 3
    before, after = recorded_run(), recorded_run({("none", 2): json.dumps(body)})
    assert analysis.report_markdown(before) != analysis.report_markdown(after)
    assert after.overhead_percent("sidecar") < before.overhead_percent("sidecar")  # type: ignore[operator]
    assert after.percentile("none", 99.0).high == pytest.approx(3 * before.percentile("none", 99.0).high)


def test_report_resources_table_uses_prometheus_answers():
    run = recorded_run()
    report = analysis.report_markdown(run)
    row = _row(report, "waypoint")
    cpus = [
        float(json.loads(recorded(f"prometheus-waypoint-cpu-{r}.json"))["data"]["result"][0]["value"][1])
        for r in (1, 2)
    ]
    assert row[1] == "0.25"  # design
    assert row[2] == analysis.Spread.of(cpus).text(3)
    run.usage = [u for u in run.usage if u.proxy != "ztunnel"]
    assert _row(analysis.report_markdown(run), "ztunnel (per node)")[2] == "not measured"


def test_the_report_json_carries_the_same_numbers():
    run = recorded_run()
    numbers = analysis.as_json(run)
    assert numbers["p99_ms"]["ambient"]["median"] == pytest.approx(run.percentile("ambient", 99.0).median)
    assert set(numbers["overhead_percent"]) == {"sidecar", "ambient", "waypoint"}
    assert set(numbers["resources"]) == set(PROXIES)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]
    assert data[-8:-4] == b"IEND"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_plot_is_a_real_png(tmp_path):
    path = tmp_path / "latency.png"
    analysis.write_plot(recorded_run(), path)
    assert _png_size(path) == (800, 450)
    assert path.stat().st_size > 10_000


def test_cumulative_distribution_merges_repetitions():
    run = recorded_run()
    buckets = [b for load in run.loads if load.case == "ambient" for b in load.buckets]
    ends, percents = analysis.cumulative(buckets)
    assert ends == sorted({b.end_ms for b in buckets})
    assert percents[-1] == pytest.approx(100.0)
    assert all(a <= b for a, b in itertools.pairwise(percents))


def test_write_report_writes_markdown_plot_and_json(tmp_path):
    bench_mesh.write_report(recorded_run(), tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"report.md", "latency.png", "report.json"}
    assert (tmp_path / "report.md").read_text().startswith("# Mesh benchmark: stack `lab`")


# --- availability ---------------------------------------------------------------------------------


def samples(failures: set[int], count: int = 400, interval: float = 0.5) -> list[analysis.Sample]:
    return [analysis.Sample(i * interval, i not in failures) for i in range(count)]


def test_phase_steps_come_from_the_stacks_outputs_and_the_marks():
    observed = [(0.0, 2), (10.0, 2), (20.0, 3), (30.0, 3), (40.0, 4), (50.0, 4), (60.0, 3)]
    steps = analysis.phase_steps(observed, marks=[12.0, 45.0])
    assert [(s.from_phase, s.to_phase) for s in steps] == [(2, 3), (3, 4), (4, 3)]
    assert [(s.started, s.finished) for s in steps] == [(12.0, 20.0), (30.0, 40.0), (45.0, 60.0)]
    assert [s.rollback for s in steps] == [False, False, True]


def test_step_reports_count_failures_and_the_longest_streak():
    stream = samples(failures={30, 31, 32, 50, 120})
    steps = [analysis.PhaseStep(10.0, 20.0, 2, 3), analysis.PhaseStep(55.0, 58.0, 3, 2)]
    first, second = analysis.step_reports(stream, steps, settle_s=30.0)
    # 10 s .. 50 s at 2 requests/s: 81 requests, of which #30-32 and #50 failed.
    assert (first.requests, first.failures, first.longest_streak) == (81, 4, 3)
    assert first.longest_streak_s == pytest.approx(1.0)
    assert first.success_ratio == pytest.approx(77 / 81)
    assert (second.requests, second.failures) == (67, 1)
    assert second.seconds == pytest.approx(3.0)


def test_availability_report_judges_the_target_and_the_rollback_budget():
    stream = samples(failures={5})
    slow_rollback = analysis.PhaseStep(0.0, 400.0, 4, 3)
    fast = analysis.PhaseStep(0.0, 100.0, 3, 2)
    report = analysis.availability_markdown("lab", stream, analysis.step_reports(stream, [slow_rollback, fast]))
    assert "399 answered 2xx: 99.750 %" in report
    assert "missed" in report
    assert re.search(r"\| 4 -> 3 \| 400 \|.*\| no \|", report)
    assert re.search(r"\| 3 -> 2 \| 100 \|.*\| yes \|", report)
    clean = analysis.availability_markdown("lab", samples(set()), [])
    assert "100.000 %" in clean and "met" in clean


def test_the_runner_refuses_unknown_cases_and_short_runs(capsys):
    assert bench_mesh.main(["lab", "--cases", "none,mtls"]) == 2
    assert "mtls" in capsys.readouterr().err
    assert bench_mesh.main(["lab", "--duration", "5"]) == 2


def test_the_runner_loads_the_design_conditions_in_the_clients():
    calls: list[tuple[str, ...]] = []

    class Recording(bench_mesh.Cluster):
        def kubectl(self, *args: str, timeout: float | None = 120) -> str:
            calls.append(args)
            return recorded("fortio-ambient-1.json")

    case = next(c for c in CASE_DEFINITIONS if c.key == "ambient")
    answer = Recording(Path("kubeconfig")).load(case, 60)
    assert analysis.parse_fortio(answer, "ambient", 1).count > 0
    [args] = calls
    command = list(args[args.index("--") + 1 :])
    assert command[:2] == ["fortio", "load"]
    assert command[command.index("-qps") + 1] == "1000" and command[command.index("-c") + 1] == "2"
    assert command[command.index("-payload-size") + 1] == "1024" and command[command.index("-t") + 1] == "60s"
    assert command[-1] == "http://fortio-server.bench-ambient.svc:8080/echo"
    assert args[:4] == ("-n", "bench-ambient", "exec", "deploy/fortio-client")
