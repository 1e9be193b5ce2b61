"""Measure the design's performance claims in a deployed lab (`meshlab:benchmark: on`).

    python -m tools.bench_mesh STACK [--kubeconfig PATH] [--duration 120] [--repetitions 3] [--out DIR]
    python -m tools.bench_mesh STACK --availability [--rate 20] [--minutes 60]

Benchmark mode runs `fortio load` (1 KB, HTTP/1.1, 1,000 requests/s, 2 connections) inside each
case's client with `kubectl exec`, reads proxy CPU and memory from Prometheus (through the API
server's service proxy, so nothing is port-forwarded), and writes DIR/report.md, DIR/latency.png
and every raw answer under DIR/raw. Cases run one after another, repetition by repetition, so a
slow drift on the machine spreads over all of them rather than landing on one.

Availability mode sends a steady stream of requests through the ingress to the test app while the
user steps `meshlab:rolloutPhase` (2 -> 3 -> 4 and back) with `pulumi up` in another terminal; it
watches the stack's `rolloutPhase` output, and Enter in this terminal marks when a step starts
(docs/rollout.md). Ctrl-C (or --minutes) ends it and writes DIR/availability.md.

The kubeconfig is the stack's `kubeconfig` output unless --kubeconfig names a file. All parsing and
reporting is in tools/bench_analysis.py; this module only talks to kubectl, pulumi and HTTP.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from components.apps.benchmark import CASES, CLIENT, CONTAINER, SERVER, BenchCase
from components.observability.prometheus import RELEASE_NAME
from components.security.namespaces import ISTIO_SYSTEM, MONITORING
from tools import bench_analysis as analysis

PROMETHEUS_PROXY = f"/api/v1/namespaces/{MONITORING}/services/{RELEASE_NAME}-server:80/proxy"
# Both injected sidecars and ztunnel's DaemonSet name their container istio-proxy; the waypoint's too.
PROXY_CONTAINER = "istio-proxy"
# Prometheus scrapes every 15 s (components/observability/prometheus.py): wait two scrapes after a run.
SCRAPE_SETTLE_S = 30


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command: Sequence[str], *, timeout: float | None = None) -> str:
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def stack_output(stack: str, name: str, *, secret: bool = False) -> str:
    command = ["pulumi", "stack", "output", name, "--stack", stack]
    return run([*command, "--show-secrets"] if secret else command, timeout=60).strip()


@contextlib.contextmanager
def kubeconfig_file(stack: str, given: Path | None) -> Iterator[Path]:
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "kubeconfig"
        path.touch(mode=0o600)
        path.write_text(stack_output(stack, "kubeconfig", secret=True))
        yield path


class Cluster:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def kubectl(self, *args: str, timeout: float | None = 120) -> str:
        return run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], timeout=timeout)

    def node_of(self, namespace: str, app: str) -> str:
        return self.kubectl(
            "-n", namespace, "get", "pods", "-l", f"app={app}", "-o", "jsonpath={.items[0].spec.nodeName}"
        ).strip()

    def load(self, case: BenchCase, duration_s: int) -> str:
        """fortio's JSON result of one run in the case's client."""
        return self.kubectl(
            *("-n", case.namespace, "exec", f"deploy/{CLIENT}", "-c", CONTAINER, "--"),
            *("fortio", "load", "-json", "-", "-qps", str(analysis.QPS), "-c", str(analysis.CONNECTIONS)),
            *("-t", f"{duration_s}s", "-payload-size", str(analysis.PAYLOAD_BYTES)),
            *("-p", ",".join(f"{p:g}" for p in analysis.PERCENTILES), case.url),
            timeout=duration_s + 120,
        )

    def prometheus(self, query: str, at: float) -> str:
        path = f"{PROMETHEUS_PROXY}/api/v1/query?" + urlencode({"query": query, "time": f"{at:.3f}"})
        return self.kubectl("get", "--raw", path)


def selectors(server_node: str, client_node: str) -> dict[str, analysis.ProxySelector]:
    nodes = f"{server_node}|{client_node}"
    by_case = {case.key: case for case in CASES}
    return {
        "sidecar": analysis.ProxySelector("sidecar", by_case["sidecar"].namespace, PROXY_CONTAINER),
        "waypoint": analysis.ProxySelector("waypoint", by_case["waypoint"].namespace, PROXY_CONTAINER, "waypoint-.+"),
        "ztunnel": analysis.ProxySelector("ztunnel", ISTIO_SYSTEM, PROXY_CONTAINER, "ztunnel-.+", nodes),
    }


# Which proxy each case loads: its CPU and memory are read right after that case's run.
CASE_PROXIES = {"sidecar": ["sidecar"], "ambient": ["ztunnel"], "waypoint": ["waypoint", "ztunnel"]}


def benchmark(args: argparse.Namespace) -> int:
    out: Path = args.out
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    cases = [case for case in CASES if case.key in args.cases]
    with kubeconfig_file(args.stack, args.kubeconfig) as kubeconfig:
        cluster = Cluster(kubeconfig)
        server_node, client_node = (
            cluster.node_of(cases[0].namespace, SERVER),
            cluster.node_of(cases[0].namespace, CLIENT),
        )
        record = analysis.BenchmarkRun(args.stack, args.duration, args.repetitions, server_node, client_node)
        proxies = selectors(server_node, client_node)
        total = len(cases) * args.repetitions
        estimate = total * (args.duration + SCRAPE_SETTLE_S) + len(cases) * args.warmup
        log(
            f"{len(cases)} data paths x {args.repetitions} repetitions x {args.duration} s: "
            f"about {estimate / 60:.0f} min"
        )
        if args.warmup:
            for case in cases:
                log(f"warm-up: {case.title}, {args.warmup} s")
                cluster.load(case, args.warmup)
        done = 0
        for repetition in range(1, args.repetitions + 1):
            for case in cases:
                done += 1
                log(f"[{done}/{total}] {case.title}, repetition {repetition}: {args.duration} s of load")
                answer = cluster.load(case, args.duration)
                ended = time.time()
                (raw / f"fortio-{case.key}-{repetition}.json").write_text(answer)
                result = analysis.parse_fortio(answer, case.key, repetition)
                record.loads.append(result)
                log(
                    f"    p50 {result.percentiles_ms[50.0]:.2f} ms, p99 {result.percentiles_ms[99.0]:.2f} ms, "
                    f"{result.actual_qps:.0f} req/s, {result.errors} non-200"
                )
                wanted = CASE_PROXIES.get(case.key, [])
                if wanted and not args.no_prometheus:
                    time.sleep(SCRAPE_SETTLE_S)
                    for proxy in wanted:
                        record_usage(
                            cluster,
                            record=record,
                            selector=proxies[proxy],
                            case=case.key,
                            repetition=repetition,
                            ended=ended,
                            window_s=args.duration,
                            raw=raw,
                        )
    write_report(record, out)
    log(f"report: {out / 'report.md'}, plot: {out / 'latency.png'}")
    return 0


def record_usage(
    cluster: Cluster,
    *,
    record: analysis.BenchmarkRun,
    selector: analysis.ProxySelector,
    case: str,
    repetition: int,
    ended: float,
    window_s: int,
    raw: Path,
) -> None:
    answers = []
    for kind, query in (("cpu", selector.cpu_query(window_s)), ("memory", selector.memory_query(window_s))):
        answer = cluster.prometheus(query, ended)
        (raw / f"prometheus-{selector.proxy}-{kind}-{case}-{repetition}.json").write_text(answer)
        answers.append(answer)
    usage = analysis.proxy_usage(selector.proxy, repetition, *answers)
    if usage is None:
        log(f"    {selector.proxy}: Prometheus has no samples (rollout phase 4 runs Prometheus)")
        return
    record.usage.append(usage)
    log(f"    {selector.proxy}: {usage.vcpu:.3f} vCPU, {usage.memory_mb:.0f} MB (mean of {usage.pods} pods)")


def write_report(record: analysis.BenchmarkRun, out: Path) -> None:
    analysis.write_plot(record, out / "latency.png")
    (out / "report.md").write_text(analysis.report_markdown(record, "latency.png"))
    (out / "report.json").write_text(json.dumps(analysis.as_json(record), indent=2) + "\n")


# --- availability -----------------------------------------------------------------------------------


def probe(url: str, host: str, timeout: float) -> bool:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/", headers={"Host": host})
        return 200 <= connection.getresponse().status < 300
    except OSError:
        return False
    finally:
        connection.close()


def availability(args: argparse.Namespace) -> int:
    address = stack_output(args.stack, "ingressAddress")
    host = urlsplit(json.loads(stack_output(args.stack, "urls", secret=False))["testApp"]).hostname or ""
    url = f"http://{address}/"
    samples: list[analysis.Sample] = []
    observed: list[tuple[float, int]] = []
    marks: list[float] = []
    stop = threading.Event()

    def stream() -> None:
        interval = 1 / args.rate
        next_at = time.monotonic()
        while not stop.is_set():
            sent = time.time()
            samples.append(analysis.Sample(sent, probe(url, host, timeout=2.0)))
            if not samples[-1].ok:
                log(f"request failed ({len(samples)} sent)")
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))

    def watch() -> None:
        while not stop.is_set():
            try:
                phase = int(stack_output(args.stack, "rolloutPhase"))
            except (RuntimeError, ValueError, subprocess.TimeoutExpired):
                phase = observed[-1][1] if observed else 0
            if not observed or observed[-1][1] != phase:
                log(f"stack reports rollout phase {phase}")
            observed.append((time.time(), phase))
            stop.wait(args.poll)

    def marker() -> None:
        for _ in sys.stdin:
            marks.append(time.time())
            log("step start marked")

    threads = [threading.Thread(target=target, daemon=True) for target in (stream, watch, marker)]
    for thread in threads:
        thread.start()
    log(
        f"{args.rate} requests/s to {url} (Host: {host}); step the phase with pulumi up, Enter marks a start, "
        "Ctrl-C ends"
    )
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait(args.minutes * 60 if args.minutes else None)
    stop.set()
    time.sleep(0.5)
    reports = analysis.step_reports(samples, analysis.phase_steps(observed, marks))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "availability.md").write_text(analysis.availability_markdown(args.stack, samples, reports))
    log(f"report: {args.out / 'availability.md'}")
    return 0


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m tools.bench_mesh", description=__doc__.split("\n\n")[0])
    parse.add_argument("stack")
    parse.add_argument("--kubeconfig", type=Path, help="a kubeconfig file (default: the stack's kubeconfig output)")
    parse.add_argument("--duration", type=int, default=120, help="seconds of load per run (default 120)")
    parse.add_argument("--repetitions", type=int, default=3, help="runs per data path (default 3)")
    parse.add_argument("--warmup", type=int, default=10, help="seconds of discarded load per data path first")
    parse.add_argument("--cases", type=lambda text: text.split(","), default=[case.key for case in CASES])
    parse.add_argument("--no-prometheus", action="store_true", help="latency only (no Prometheus before phase 4)")
    parse.add_argument("--out", type=Path, default=Path("bench-report"), help="report folder (default bench-report)")
    parse.add_argument("--availability", action="store_true", help="availability through the rollout instead")
    parse.add_argument("--rate", type=float, default=20.0, help="availability: requests per second (default 20)")
    parse.add_argument("--poll", type=float, default=5.0, help="availability: seconds between phase checks")
    parse.add_argument("--minutes", type=float, default=0.0, help="availability: stop after this long (0: Ctrl-C)")
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    unknown = set(args.cases) - {case.key for case in CASES}
    if unknown:
        print(
            f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(c.key for c in CASES)}", file=sys.stderr
        )
        return 2
    if args.duration < 10 or args.repetitions < 1:
        print("--duration is at least 10 s and --repetitions at least 1", file=sys.stderr)
        return 2
    os.environ.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    return availability(args) if args.availability else benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
