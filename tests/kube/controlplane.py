"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

Set up as RKE2 v1.32.7 sets up a server with `profile: cis`, where it matters to what the API accepts:
Node and RBAC authorization, privileged containers allowed by the API (Pod Security decides), the
NodeRestriction plugin, and Pod Security defaults from the AdmissionConfiguration RKE2 writes
(restricted cluster-wide, with its exempt namespaces). No scheduler and no kubelet: pods are admitted
and stay Pending.

Everything listens on free loopback ports; etcd keeps its data on tmpfs. Certificates (a CA, the
serving certificate, the service-account key pair) are made with openssl, which Debian installs by
default. Processes are started from the calling thread, die with it (PR_SET_PDEATHSIG), and are stopped
by their own PID, never by name.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kube import toolchain

# What rke2 v1.32.7 writes to /etc/rancher/rke2/rke2-pss.yaml with `profile: cis` (pkg/rke2/psa.go,
# restrictedPSAConfig), byte for byte.
RKE2_CIS_ADMISSION_CONFIG = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1beta1
    kind: PodSecurityConfiguration
    defaults:
      enforce: "restricted"
      enforce-version: "latest"
      audit: "restricted"
      audit-version: "latest"
      warn: "restricted"
      warn-version: "latest"
    exemptions:
      usernames: []
      runtimeClasses: []
      namespaces: [kube-system, cis-operator-system, tigera-operator]"""
PSA_EXEMPT_NAMESPACES = ("kube-system", "cis-operator-system", "tigera-operator")
# RKE2's default service CIDR (the stacks' meshlab:serviceCidr default).
SERVICE_CIDR = "10.43.0.0/16"
ADMIN_USER = "meshlab-admin"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SHM = Path("/dev/shm")

PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    pass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nothing listens on right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Certificates:
    ca: Path
    serving_cert: Path
    serving_key: Path
    service_account_key: Path
    service_account_public: Path


def make_certificates(directory: Path) -> Certificates:
    """A CA, a serving certificate for 127.0.0.1 and localhost signed by it, and the service-account
    key pair (EC P-256: ES256 tokens), valid for a day."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=meshlab-kube-tier-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl("req", "-new", *ec, "-keyout", "apiserver.key", "-out", "apiserver.csr", "-subj", "/CN=kube-apiserver",
             cwd=directory)  # fmt: skip
    (directory / "apiserver.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
    )
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "apiserver.ext", "-out", "apiserver.crt",
        cwd=directory,
    )  # fmt: skip
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key", cwd=directory)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
    return Certificates(
        ca=directory / "ca.crt",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        service_account_key=directory / "sa.key",
        service_account_public=directory / "sa.pub",
    )


@dataclass
class Process:
    """One binary of the control plane, its log, and its PID."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            # Started from the session's main thread, before any worker thread: PR_SET_PDEATHSIG follows
            # the thread that forked, and preexec_fn is safe while no other thread runs.
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (/proc/PID/stat), 0 once it has exited."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, AssertionError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to this PID, SIGKILL to it if it has not exited in `timeout` seconds."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout)


def wait_until(what: str, probe: Callable[[], bool], processes: Sequence[Process], timeout: float) -> float:
    """Poll `probe` until it is true (bounded by `timeout`); fail at once if a process has exited.
    Returns the seconds it took."""
    start = time.monotonic()
    delay = 0.05
    while True:
        for process in processes:
            code = process.exited()
            if code is not None:
                raise ControlPlaneError(f"{process.name} exited ({code}) while waiting for {what}:\n{process.tail()}")
        if probe():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in processes)
            raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]
    warnings: tuple[str, ...] = ()  # the server's Warning headers (e.g. "would violate PodSecurity ...")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


def _warnings(headers: Any) -> tuple[str, ...]:
    """The texts of `Warning: 299 - "text"` headers."""
    found = []
    for value in headers.get_all("Warning") or []:
        text = value.split(" ", 2)[-1].strip() if value.startswith("299") else value
        found.append(text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text)
    return tuple(found)


class Api:
    """The API server over HTTPS with the admin's bearer token: exact answers (status, message,
    warnings), and server-side apply as the Pulumi Kubernetes provider does it."""

    def __init__(self, server: str, token: str, ca: Path) -> None:
        self.server = server
        self.token = token
        self.context = ssl.create_default_context(cafile=str(ca))
        self._resources: dict[str, dict[str, tuple[str, bool]]] = {}
        self._local = threading.local()  # one kept-alive connection per thread

    def _connection(self) -> http.client.HTTPSConnection:
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            address = urllib.parse.urlsplit(self.server)
            connection = http.client.HTTPSConnection(
                address.hostname or "127.0.0.1", address.port, context=self.context, timeout=30
            )
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Response:
        target = path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, target, body=data, headers=headers)
                answer = connection.getresponse()
                raw = answer.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed a kept-alive connection: once more on a new one
                self._drop_connection()
                if attempt == 2:
                    raise
                continue
            except (OSError, http.client.HTTPException):
                self._drop_connection()
                raise
            return Response(answer.status, _json(raw), _warnings(answer.headers))
        raise AssertionError("unreachable")

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def create(self, path: str, body: dict[str, Any], *, dry_run: bool = False) -> Response:
        return self.request("POST", path, body, {"dryRun": "All"} if dry_run else None)

    def ready(self) -> bool:
        try:
            return self.get("/readyz").status == 200
        except (OSError, ValueError, http.client.HTTPException):
            return False

    # --- discovery and server-side apply
    def _discover(self, api_version: str) -> Response:
        answer = self.get(f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}")
        if answer.ok:
            self._resources[api_version] = {
                str(r["kind"]): (str(r["name"]), bool(r["namespaced"]))
                for r in answer.body.get("resources", [])
                if "/" not in str(r["name"])  # not a subresource
            }
        return answer

    def resource(self, api_version: str, kind: str, timeout: float = 10) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from discovery; read again for a while when the group-version
        does not (yet) serve it, e.g. just after its CRD became Established."""
        deadline = time.monotonic() + timeout
        while kind not in self._resources.get(api_version, {}):
            answer = self._discover(api_version)
            if kind in self._resources.get(api_version, {}):
                break
            if time.monotonic() > deadline:
                raise LookupError(f"the server serves no {kind} in {api_version}: {answer.status} {answer.message}")
            time.sleep(0.2)
        return self._resources[api_version][kind]

    def object_path(self, body: dict[str, Any]) -> str:
        api_version, kind = str(body["apiVersion"]), str(body["kind"])
        plural, namespaced = self.resource(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        metadata = body.get("metadata") or {}
        where = f"/namespaces/{metadata.get('namespace') or 'default'}" if namespaced else ""
        return f"{base}{where}/{plural}/{metadata['name']}"

    def apply(self, body: dict[str, Any], *, field_manager: str, dry_run: bool, force: bool = False) -> Response:
        """Server-side apply with strict field validation (unknown fields are errors)."""
        query = {"fieldManager": field_manager, "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        if force:
            query["force"] = "true"
        return self.request("PATCH", self.object_path(body), body, query, "application/apply-patch+yaml")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"message": raw.decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


@dataclass
class Kubectl:
    """The kubectl built with the control plane, on the admin's kubeconfig. Every run gets a fresh
    --cache-dir: a discovery cache can outlive the server it describes and answer with false 404s."""

    binary: Path
    kubeconfig: Path
    scratch: Path

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cache = tempfile.mkdtemp(prefix="kubectl-cache-", dir=self.scratch)
        return subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", f"--cache-dir={cache}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.scratch)},
        )


def _kubeconfig(server: str, ca: Path, user: str, token: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kube-tier", "cluster": {"server": server, "certificate-authority": str(ca)}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "kube-tier", "context": {"cluster": "kube-tier", "user": user}}],
            "current-context": "kube-tier",
        },
        indent=1,
    )


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager for one stack. Start several with `start_all`."""

    name: str
    bin_dir: Path
    work: Path  # certificates, config files, logs, kubectl caches
    data_root: Path = SHM  # etcd's data directory goes here (tmpfs)
    seed_data: Path | None = None  # another (stopped) plane's etcd data to start from
    apiserver_extra_args: list[str] = field(default_factory=list)  # e.g. the apply tier's plugins turned off
    processes: list[Process] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of each process, read as it stops

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.etcd_client, self.etcd_peer, self.apiserver_port, self.controller_manager_port = free_ports(4)
        self.server = f"https://127.0.0.1:{self.apiserver_port}"
        self.admin_token = secrets.token_hex(16)
        self.controller_manager_token = secrets.token_hex(16)
        root = self.data_root if self.data_root.is_dir() and os.access(self.data_root, os.W_OK) else self.work
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"meshlab-kube-{self.name}-", dir=root))
        self.certs = make_certificates(self.work / "pki")
        self.api = Api(self.server, self.admin_token, self.certs.ca)
        admin = self.work / "admin.kubeconfig"
        admin.write_text(_kubeconfig(self.server, self.certs.ca, ADMIN_USER, self.admin_token))
        scratch = self.work / "kubectl"
        scratch.mkdir(exist_ok=True)
        self.kubectl = Kubectl(self.bin_dir / toolchain.KUBECTL, admin, scratch)

    def _binary(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _process(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.work / f"{name}.log")
        self.processes.append(process)
        process.start()
        return process

    # --- etcd
    def start_etcd(self) -> None:
        client, peer = f"http://127.0.0.1:{self.etcd_client}", f"http://127.0.0.1:{self.etcd_peer}"
        self._started = time.monotonic()
        if self.seed_data is not None:
            # A one-member cluster restarts from its data whatever its flags say; only its URLs change.
            shutil.copytree(self.seed_data, self.data_dir, dirs_exist_ok=True)
        self.etcd = self._process(
            toolchain.ETCD,
            [
                self._binary(toolchain.ETCD),
                "--name=default",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--log-level=warn",
            ],
        )

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_client}/health", timeout=2) as answer:
                return bool(json.loads(answer.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def wait_etcd(self, timeout: float = 30) -> None:
        wait_until(f"etcd of {self.name} to be healthy", self._etcd_healthy, [self.etcd], timeout)
        self.timings["etcd"] = time.monotonic() - self._started

    # --- kube-apiserver
    def start_apiserver(self) -> None:
        admission = self.work / "rke2-pss.yaml"
        admission.write_text(RKE2_CIS_ADMISSION_CONFIG)
        tokens = self.work / "tokens.csv"
        tokens.write_text(
            f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
            f"{self.controller_manager_token},{CONTROLLER_MANAGER_USER},{CONTROLLER_MANAGER_USER}\n"
        )
        tokens.chmod(0o600)
        self.apiserver = self._process(
            toolchain.APISERVER,
            [
                self._binary(toolchain.APISERVER),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--tls-cert-file={self.certs.serving_cert}",
                f"--tls-private-key-file={self.certs.serving_key}",
                f"--client-ca-file={self.certs.ca}",
                f"--cert-dir={self.work / 'apiserver'}",
                f"--token-auth-file={tokens}",
                "--anonymous-auth=false",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--enable-admission-plugins=NodeRestriction",
                f"--admission-control-config-file={admission}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.certs.service_account_public}",
                f"--service-account-signing-key-file={self.certs.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # The advertised address is loopback, which Endpoints may not hold.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                *self.apiserver_extra_args,
            ],
        )

    def wait_apiserver(self, timeout: float = 90) -> None:
        wait_until(f"kube-apiserver of {self.name} to be ready", self.api.ready, [self.etcd, self.apiserver], timeout)
        self.timings["kube-apiserver"] = time.monotonic() - self._started

    # --- kube-controller-manager
    def start_controller_manager(self) -> None:
        kubeconfig = self.work / "controller-manager.kubeconfig"
        kubeconfig.write_text(
            _kubeconfig(self.server, self.certs.ca, CONTROLLER_MANAGER_USER, self.controller_manager_token)
        )
        self.controller_manager = self._process(
            toolchain.CONTROLLER_MANAGER,
            [
                self._binary(toolchain.CONTROLLER_MANAGER),
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.controller_manager_port}",
                f"--cert-dir={self.work / 'controller-manager'}",
                f"--service-account-private-key-file={self.certs.service_account_key}",
                f"--root-ca-file={self.certs.ca}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )

    def _controller_manager_healthy(self) -> bool:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its own self-signed serving certificate, on loopback
        url = f"https://127.0.0.1:{self.controller_manager_port}/healthz"
        try:
            with urllib.request.urlopen(url, context=insecure, timeout=2) as answer:
                healthy = answer.status == 200
        except (OSError, ValueError):
            return False
        # and its controllers run: the service-account controller has made `default` a ServiceAccount
        return healthy and self.api.get("/api/v1/namespaces/default/serviceaccounts/default").status == 200

    def wait_controller_manager(self, timeout: float = 60) -> None:
        wait_until(
            f"kube-controller-manager of {self.name} to run its controllers",
            self._controller_manager_healthy,
            self.processes,
            timeout,
        )
        self.timings["kube-controller-manager"] = time.monotonic() - self._started

    def wait_service_account(self, namespace: str, name: str = "default", timeout: float = 30) -> None:
        """Until the service-account controller has made `name` in `namespace`."""
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"
        wait_until(
            f"ServiceAccount {namespace}/{name}", lambda: self.api.get(path).status == 200, self.processes, timeout
        )

    # --- all together
    def check_running(self) -> None:
        for process in self.processes:
            code = process.exited()
            if code is not None:
                raise ControlPlaneError(f"{process.name} of {self.name} exited ({code}):\n{process.tail()}")

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop each process by its PID, newest first; remove etcd's data unless asked to keep it."""
        for process in reversed(self.processes):
            if process.exited() is None:
                self.cpu[process.name] = process.cpu_seconds()
            process.stop()
        if not keep_data:
            self.remove_data()

    def remove_data(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_all(planes: Iterable[ControlPlane]) -> None:
    """Start several control planes side by side, one component at a time across all of them."""
    planes = list(planes)
    steps = [
        ("start_etcd", "wait_etcd"),
        ("start_apiserver", "wait_apiserver"),
        ("start_controller_manager", "wait_controller_manager"),
    ]
    for start, wait in steps:
        for plane in planes:
            getattr(plane, start)()
        for plane in planes:
            getattr(plane, wait)()
