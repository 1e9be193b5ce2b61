"""Every container image a stack's lab pulls, derived from the program rather than kept by hand.

    python -m tools.images STACK [--config-file FILE] [--charts DIR] [--skip-rke2] [--mirror HOST[/PREFIX]] [--origin]
    python -m tools.images --write-lock [--charts DIR]
    python -m tools.images --check-lock [--charts DIR]

Prints one image a line, sorted, without duplicates, fully qualified (registry/repository:tag or @digest).
The images come from:
- the charts: the program runs under mocks for STACK (tools.render) and every Helm Release it registers is
  rendered with `helm template` (its chart, version, release name, namespace and values; Kubernetes at the
  pinned version); every container, init container and ephemeral container of every pod and pod template
  counts, Helm hooks included, test hooks not;
- Istio's proxy, which istiod starts for every Gateway the program registers (ingress, waypoints): as the
  rendered istiod chart configures it (hub, tag and image type: `-distroless` with the ambient profile),
  config/versions.py istio_proxy_image when no istiod is rendered;
- meshlab's own workloads: the pod specs the program registers (the test app, the clients, the webhook
  waits) and, on a cluster meshlab builds, the kube-vip static pod of the servers;
- on a cluster meshlab builds, RKE2's system images: the release's rke2-images-core and rke2-images-cilium
  lists, read from meshlab:rke2Artifacts (a directory) or CACHE/rke2/VERSION-ARCH/, downloaded there when
  neither has them (checked against the release's sha256sum file).

Charts come from --charts DIR (unpacked charts or .tgz archives, as in ../shared/chart-sources) or else from
the repository each Release names (meshlab:chartRepository, or the chart's upstream), downloaded once into
CACHE/charts/ and checked against the repository index's digest. CACHE is meshlab:imageCacheDir, else
$MESHLAB_CACHE_DIR, else ~/.cache/meshlab. Helm is tools/helm.sh's (config/versions.py HELM).

--mirror HOST[/PREFIX] prints `SOURCE DESTINATION` pairs instead (the destination: the mirror, then the
source's repository path without its registry, the same tag or digest), as `skopeo copy` or `crane copy`
loops read them; --origin adds a column saying where each image comes from: rke2, chart/RELEASE (RELEASE a
key of config/versions.py CHARTS) or meshlab (several, comma-separated, when more than one pulls it).

--write-lock renders every chart (from --charts DIR, default ../shared/chart-sources or .cache/chart-sources)
with the values of every stack file, and again with each boolean setting that can turn on more of a chart,
and writes config/images.lock; --check-lock exits 1 with a diff when that file is not what it would write.

Exit status: 0; 1 when something is missing or fails (a chart, helm, RKE2's lists) or the lock is stale;
2 for invalid settings.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.cluster.artifacts import cache_root, release_cache
from components.cluster.files import kube_vip_manifest
from components.hosts.seed_iso import write_atomically
from config import versions
from config.images import DOCKER_HUB, LOCK_FILE, registry_of
from config.loader import StackConfig, read_stack_file, settings_from_config
from config.settings import SECTIONS, Settings, config_key
from config.validation import SettingsError
from tools import cli
from tools.render import ROOT, Rendering, render, with_overrides

EXIT_FAILED = 1
EXIT_INVALID_CONFIG = 2
HELM_SCRIPT = ROOT / "tools" / "helm.sh"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
GATEWAY_TYPE = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
ORIGIN_RKE2 = "rke2"
ORIGIN_MESHLAB = "meshlab"
# Where a pod spec sits in each kind of object that holds one.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
HOOK_ANNOTATION = "helm.sh/hook"
# `helm test` runs these; an install never does. (test-success and test-failure: Helm 2's names, still read.)
TEST_HOOKS = frozenset({"test", "test-success", "test-failure"})
DOWNLOAD_TIMEOUT_SECONDS = 60
LOCK_HEADER = """\
# Every container image the pinned Helm charts run with meshlab's values, one `RELEASE CHART-VERSION IMAGE`
# a line: RELEASE is a key of config/versions.py CHARTS, CHART-VERSION the chart version it was rendered
# from. `helm template` of every chart with the values of every stack file, and again with each boolean
# setting that turns on more of a chart, so it holds more than any one stack pulls. config/images.py reads
# the registries the lab pulls from here.
# Generated by `python -m tools.images --write-lock`; do not edit by hand (`--check-lock` finds it stale).
"""

# An image reference, as the container runtimes parse one (distribution's reference grammar, in short).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_REGISTRY = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


class ImagesError(RuntimeError):
    """Something the listing needs is missing or failed; the message says what and how to provide it."""


# --- image references ----------------------------------------------------------------------------------


def _split_registry(name: str) -> tuple[str, str]:
    """(registry, repository path) of a reference without its digest; docker.io for Docker Hub's short forms."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return registry_of(name), rest
    return DOCKER_HUB, name


def qualified(image: str) -> str:
    """`image` fully qualified: its registry (docker.io for Docker Hub's short forms, `library/` for its
    official images) and its tag (`latest` when it names neither a tag nor a digest, as a pull does)."""
    reference = image.strip()
    name, _, digest = reference.partition("@")
    registry, path = _split_registry(name)
    tagged = ":" in path.rsplit("/", 1)[-1]
    repository, tag = path.rsplit(":", 1) if tagged else (path, "")
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if (
        not _REGISTRY.fullmatch(registry)
        or not _REPOSITORY.fullmatch(repository)
        or (tagged and not _TAG.fullmatch(tag))
        or (digest and not _DIGEST.fullmatch(digest))
        or ("@" in reference and not digest)
    ):
        raise ImagesError(f"not an image reference: {image!r}")
    if not tag and not digest:
        tag = "latest"
    return f"{registry}/{repository}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def mirror_destination(image: str, mirror: str) -> str:
    """Where `image` goes in `mirror` (HOST[/PREFIX]): the mirror, then the image's repository path without
    its registry, with the same tag or digest."""
    source = qualified(image)
    return f"{mirror.rstrip('/')}/{source.split('/', 1)[1]}"


def _checked_mirror(mirror: str) -> str:
    if "://" in mirror or not mirror.strip("/") or any(char.isspace() for char in mirror):
        raise ImagesError(f"--mirror takes HOST[/PREFIX] (e.g. registry.example:5000/lab), not {mirror!r}")
    return mirror.strip("/")


# --- pod specs -------------------------------------------------------------------------------------------


def pod_specs(document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The pod spec of a Kubernetes object that holds one (a Pod, a workload's pod template, a CronJob's
    job template), each item of a List."""
    kind = document.get("kind")
    if kind == "List":
        for item in document.get("items") or []:
            if isinstance(item, Mapping):
                yield from pod_specs(item)
        return
    path = POD_SPEC_PATHS.get(str(kind))
    if path is None:
        return
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if isinstance(node, Mapping):
        yield node


def spec_images(spec: Mapping[str, Any]) -> list[str]:
    """The image of every container, init container and ephemeral container of a pod spec."""
    images = []
    for key in CONTAINER_LISTS:
        for container in spec.get(key) or []:
            image = container.get("image") if isinstance(container, Mapping) else None
            if isinstance(image, str) and image.strip():
                images.append(image.strip())
    return images


def _is_test_hook(document: Mapping[str, Any]) -> bool:
    annotations = (document.get("metadata") or {}).get("annotations") or {}
    hooks = {hook.strip() for hook in str(annotations.get(HOOK_ANNOTATION, "")).split(",")}
    return bool(hooks & TEST_HOOKS)


# libyaml's loader when PyYAML has it: a chart's manifest can hold megabytes of CRDs.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)
_TOP_LEVEL_KIND = re.compile(r"^kind:[ \t]*[\"']?([A-Za-z0-9]+)", re.MULTILINE)


def documents(manifest: str, kinds: Iterable[str]) -> Iterator[Mapping[str, Any]]:
    """The YAML documents of `manifest` of the given kinds (Lists too), parsing only those: the others (CRDs,
    RBAC, ...) are skipped by their top-level `kind:` line."""
    wanted = {*kinds, "List"}
    for chunk in _DOCUMENT_SEPARATOR.split(manifest):
        kind = _TOP_LEVEL_KIND.search(chunk)
        if kind is not None and kind.group(1) not in wanted:
            continue
        for document in yaml.load_all(chunk, Loader=_LOADER):
            if isinstance(document, Mapping):
                yield document


def manifest_images(text: str) -> set[str]:
    """Every image the pods of a rendered manifest (one or more YAML documents) run, but `helm test`'s."""
    images: set[str] = set()
    for document in documents(text, POD_SPEC_PATHS):
        if _is_test_hook(document):
            continue
        for spec in pod_specs(document):
            images.update(spec_images(spec))
    return images


def _config_map_data(documents: Iterable[Any], name: str) -> Mapping[str, Any]:
    for document in documents:
        if (
            isinstance(document, Mapping)
            and document.get("kind") == "ConfigMap"
            and (document.get("metadata") or {}).get("name") == name
        ):
            return document.get("data") or {}
    return {}


def istio_proxy_image_of(manifest: str) -> str | None:
    """The proxy image istiod starts for gateways, waypoints and sidecars, as its rendered chart configures it:
    global.hub, global.proxy.image and global.tag of the injector's values, with the image type of the mesh
    config's defaultConfig (or else global.variant) as a tag suffix (`-distroless`; none for `default`).
    None when `manifest` is not istiod's."""
    config_maps = list(documents(manifest, ["ConfigMap"]))
    injector = _config_map_data(config_maps, "istio-sidecar-injector").get("values")
    if not injector:
        return None
    values = json.loads(injector).get("global") or {}
    mesh = yaml.load(_config_map_data(config_maps, "istio").get("mesh") or "{}", Loader=_LOADER) or {}
    image_type = ((mesh.get("defaultConfig") or {}).get("image") or {}).get("imageType") or values.get("variant")
    image = f"{values['hub']}/{(values.get('proxy') or {}).get('image') or 'proxyv2'}:{values['tag']}"
    return image if image_type in (None, "", "default") else f"{image}-{image_type}"


# --- what the program registers ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartRelease:
    """One Helm Release the program registers, as `helm template` needs it. Releases that compare equal
    render the same."""

    key: str  # the chart's key in versions.CHARTS
    chart: str
    version: str
    repository: str
    name: str
    namespace: str
    values_json: str  # the values as canonical JSON (hashable)

    @property
    def values(self) -> Any:
        return json.loads(self.values_json)


def chart_key(chart: str) -> str:
    """The key of versions.CHARTS whose chart is named `chart`."""
    keys = [key for key, pinned in versions.CHARTS.items() if pinned.name == chart]
    if len(keys) != 1:
        raise ImagesError(f"the program installs chart {chart!r}, which config/versions.py CHARTS does not pin")
    return keys[0]


def releases(rendering: Rendering) -> list[ChartRelease]:
    found = []
    for registration in rendering.of_type(RELEASE_TYPE):
        inputs = registration.inputs
        chart = str(inputs.get("chart", ""))
        found.append(
            ChartRelease(
                key=chart_key(chart),
                chart=chart,
                version=str(inputs.get("version", "")),
                repository=str((inputs.get("repositoryOpts") or {}).get("repo", "")),
                name=str(inputs.get("name") or registration.name),
                namespace=str(inputs.get("namespace") or "default"),
                values_json=json.dumps(inputs.get("values") or {}, sort_keys=True),
            )
        )
    return found


def _kind_of(type_token: str) -> str:
    """The Kubernetes kind of a resource type (`kubernetes:apps/v1:Deployment` -> Deployment); patches count
    as their kind."""
    return type_token.rsplit(":", 1)[-1].removesuffix("Patch")


def workload_images(rendering: Rendering) -> set[str]:
    """The images of every pod spec the program registers itself."""
    images: set[str] = set()
    for registration in rendering.resources():
        if not registration.type.startswith("kubernetes:") or _kind_of(registration.type) not in POD_SPEC_PATHS:
            continue
        document = {**registration.inputs, "kind": _kind_of(registration.type)}
        for spec in pod_specs(document):
            images.update(spec_images(spec))
    return images


def meshlab_images(settings: Settings, rendering: Rendering, proxy: str | None = None) -> set[str]:
    """meshlab's own: its workloads, Istio's proxy when it registers a Gateway (`proxy`, istiod's as its
    chart configures it, else the pinned one), kube-vip on a built cluster."""
    images = workload_images(rendering)
    if rendering.of_type(GATEWAY_TYPE):
        images.add(proxy or versions.istio_proxy_image(settings.mesh.istio_version))
    if not settings.cluster.existing:
        images |= manifest_images(kube_vip_manifest(settings))
    return images


# --- downloads -------------------------------------------------------------------------------------------

Fetch = Callable[[str], bytes]


def fetch_url(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as answer:
        data: bytes = answer.read()
    return data


def _why(error: Exception) -> str:
    """What went wrong with a download, in a few words."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error)


# --- RKE2's system images --------------------------------------------------------------------------------


def _listed_checksums(text: str) -> dict[str, str]:
    """name -> SHA-256 of a `sha256sum` file."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            found[parts[1].lstrip("*")] = parts[0].lower()
    return found


def rke2_image_lists(settings: Settings, cache: Path, fetch: Fetch | None = None) -> dict[str, str]:
    """name -> text of RKE2's image lists for the stack's release and guest architecture."""
    fetch = fetch or fetch_url
    artifacts = versions.Rke2Artifacts(settings.cluster.rke2_version, settings.topology.guest_arch)
    cache_dir = release_cache(settings, cache)
    configured = settings.sources.rke2_artifacts
    folders = [Path(configured)] if configured.startswith("/") else []
    folders.append(cache_dir)
    found: dict[str, str] = {}
    for name in artifacts.image_lists:
        for folder in folders:
            if (folder / name).is_file():
                found[name] = (folder / name).read_text()
                break
    missing = [name for name in artifacts.image_lists if name not in found]
    if not missing:
        return found
    try:
        # The release's checksums: the copy beside the artifacts (meshlab:rke2Artifacts=download keeps one), else
        # the release's own.
        held = [folder / artifacts.checksums for folder in folders if (folder / artifacts.checksums).is_file()]
        listed = held[0].read_bytes() if held else fetch(artifacts.url(artifacts.checksums))
        checksums = _listed_checksums(listed.decode())
        for name in missing:
            data = fetch(artifacts.url(name))
            expected = checksums.get(name)
            if expected and hashlib.sha256(data).hexdigest() != expected:
                raise ImagesError(
                    f"{artifacts.url(name)} does not match its SHA-256 in {artifacts.checksums} ({expected})"
                )
            write_atomically(cache_dir / name, data)
            found[name] = data.decode()
    except (OSError, urllib.error.URLError, UnicodeDecodeError) as error:
        where = " or ".join(str(folder) for folder in folders)
        raise ImagesError(
            f"RKE2 {artifacts.version}'s image lists {' and '.join(missing)} are not in {where} and could not be "
            f"downloaded ({_why(error)}): copy them from {artifacts.url('')} into {cache_dir}, or set "
            f"{config_key('rke2_artifacts')} to a directory holding them (or pass --skip-rke2 to leave RKE2's "
            "images out)."
        ) from None
    return found


def rke2_images(settings: Settings, cache: Path, fetch: Fetch | None = None) -> set[str]:
    images: set[str] = set()
    for text in rke2_image_lists(settings, cache, fetch).values():
        images.update(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return images


# --- charts ---------------------------------------------------------------------------------------------


def _archive_chart(path: Path) -> tuple[str, str] | None:
    """(name, version) of the chart archive at `path`, None if it is not one."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive.getmembers():
                parts = member.name.removeprefix("./").split("/")
                if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                    extracted = archive.extractfile(member)
                    metadata = yaml.safe_load(extracted.read()) if extracted else None
                    if isinstance(metadata, dict):
                        return str(metadata.get("name")), str(metadata.get("version"))
    except (OSError, tarfile.TarError, yaml.YAMLError):
        return None
    return None


def _repository_folder(url: str) -> str:
    """A folder name for a repository URL (its host and path)."""
    parsed = urllib.parse.urlsplit(url)
    return re.sub(r"[^A-Za-z0-9.-]+", "_", f"{parsed.netloc}{parsed.path}".strip("/")) or "repository"


class ChartSource:
    """The chart archive of each release: from a folder of chart sources (packaged as the real-apply tier's
    repository packages them, tools.chart_repository), or from the release's repository into the cache."""

    def __init__(
        self, work: Path, charts: Path | None = None, cache: Path | None = None, fetch: Fetch | None = None
    ) -> None:
        self.work, self.charts, self.cache, self.fetch = work, charts, cache, fetch or fetch_url
        self._local: dict[tuple[str, str], Path] | None = None
        self._indexes: dict[str, dict[str, Any]] = {}

    def archive(self, release: ChartRelease) -> Path:
        if self.charts is not None:
            return self._from_folder(release)
        return self._from_repository(release)

    def _from_folder(self, release: ChartRelease) -> Path:
        assert self.charts is not None
        if self._local is None:
            from tools.chart_repository import build_repository  # noqa: PLC0415

            if not self.charts.is_dir():
                raise ImagesError(f"--charts {self.charts}: no such folder")
            folder = self.work / "charts"
            entries = build_repository(self.charts, folder)
            self._local = {(entry.name, entry.version): folder / entry.file for entry in entries}
        found = self._local.get((release.chart, release.version))
        if found is None:
            held = ", ".join(f"{name} {version}" for name, version in sorted(self._local))
            raise ImagesError(f"{self.charts} holds no chart {release.chart} {release.version} (it holds {held})")
        return found

    def _index(self, repository: str) -> dict[str, Any]:
        if repository not in self._indexes:
            url = f"{repository.rstrip('/')}/index.yaml"
            try:
                index = yaml.safe_load(self.fetch(url))
            except (OSError, urllib.error.URLError, yaml.YAMLError) as error:
                raise ImagesError(
                    f"cannot read {url} ({_why(error)}): pass --charts DIR (a folder of the charts, such as "
                    f"../shared/chart-sources) or set {config_key('chart_repository')} to a repository you reach"
                ) from None
            self._indexes[repository] = index if isinstance(index, dict) else {}
        return self._indexes[repository]

    def _from_repository(self, release: ChartRelease) -> Path:
        if not release.repository.startswith(("http://", "https://", "file://")):
            raise ImagesError(f"release {release.name}: cannot read charts from repository {release.repository!r}")
        cache = self.cache or Path.home() / ".cache" / "meshlab"
        path = cache / "charts" / _repository_folder(release.repository) / f"{release.chart}-{release.version}.tgz"
        if path.is_file() and _archive_chart(path) == (release.chart, release.version):
            return path
        entries = (self._index(release.repository).get("entries") or {}).get(release.chart) or []
        entry = next((e for e in entries if str(e.get("version")) == release.version), None)
        if entry is None or not entry.get("urls"):
            raise ImagesError(f"{release.repository}/index.yaml lists no chart {release.chart} {release.version}")
        url = urllib.parse.urljoin(f"{release.repository.rstrip('/')}/", str(entry["urls"][0]))
        try:
            data = self.fetch(url)
        except (OSError, urllib.error.URLError) as error:
            raise ImagesError(f"cannot download {url} ({_why(error)})") from None
        digest = str(entry.get("digest") or "")
        if digest and hashlib.sha256(data).hexdigest() != digest.lower():
            raise ImagesError(f"{url} does not match the digest {release.repository}/index.yaml lists ({digest})")
        write_atomically(path, data)
        if _archive_chart(path) != (release.chart, release.version):
            path.unlink()
            raise ImagesError(f"{url} is not the chart {release.chart} {release.version}")
        return path


def helm_binary() -> str:
    """tools/helm.sh's Helm (built from Go modules the first time)."""
    done = subprocess.run(
        ["bash", str(HELM_SCRIPT), versions.HELM], capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise ImagesError(f"no Helm: {done.stderr.strip() or 'tools/helm.sh printed no path'}")
    return done.stdout.strip().splitlines()[-1]


def helm_template(helm: str, release: ChartRelease, archive: Path, work: Path) -> str:
    """`helm template` of one release: its name, namespace and values, Kubernetes at the pinned version."""
    work.mkdir(parents=True, exist_ok=True)
    values = work / "values.json"  # JSON is YAML: Helm reads it as a values file
    values.write_text(release.values_json)
    home = work / "helm-home"  # Helm's own config, cache and data: nothing of the user's, nothing left behind
    environment = {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    argv = [
        helm, "template", release.name, str(archive),
        "--namespace", release.namespace,
        "--kube-version", versions.KUBERNETES,
        "--values", str(values),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=environment, timeout=300)
    if done.returncode != 0:
        raise ImagesError(f"helm template of {release.name} ({release.chart} {release.version}): {done.stderr.strip()}")
    return done.stdout


def render_charts(wanted: Iterable[ChartRelease], source: ChartSource, helm: str) -> dict[ChartRelease, str]:
    """The manifest `helm template` renders for each release, each distinct release once (in parallel)."""
    ordered = list(dict.fromkeys(wanted))
    archives = [source.archive(release) for release in ordered]  # downloads one at a time

    def manifest(index: int) -> str:
        return helm_template(helm, ordered[index], archives[index], source.work / "render" / str(index))

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(ordered, pool.map(manifest, range(len(ordered))), strict=True))


# --- a stack's images -------------------------------------------------------------------------------------


Images = dict[str, set[str]]  # image -> where it comes from


def _add(images: Images, origin: str, found: Iterable[str]) -> None:
    for image in found:
        images.setdefault(qualified(image), set()).add(origin)


def stack_images(
    settings: Settings,
    rendering: Rendering,
    source: ChartSource,
    helm: Callable[[], str] | None = None,
    *,
    skip_rke2: bool = False,
    fetch: Fetch | None = None,
) -> Images:
    """Every image the stack's lab pulls, with where each comes from."""
    images: Images = {}
    if not settings.cluster.existing and not skip_rke2:
        _add(images, ORIGIN_RKE2, rke2_images(settings, cache_root(settings), fetch))
    found = releases(rendering)
    manifests = render_charts(found, source, (helm or helm_binary)()) if found else {}
    proxies = {proxy for proxy in map(istio_proxy_image_of, manifests.values()) if proxy}
    if len(proxies) > 1:
        raise ImagesError(f"two istiod releases configure different proxies: {sorted(proxies)}")
    _add(images, ORIGIN_MESHLAB, meshlab_images(settings, rendering, next(iter(proxies), None)))
    for release, manifest in manifests.items():
        _add(images, f"chart/{release.key}", manifest_images(manifest))
    return images


def output_lines(images: Images, mirror: str = "", origin: bool = False) -> list[str]:
    out = []
    for image in sorted(images):
        columns = [image]
        if mirror:
            columns.append(mirror_destination(image, mirror))
        if origin:
            columns.append(",".join(sorted(images[image])))
        out.append(" ".join(columns))
    return out


# --- the lock --------------------------------------------------------------------------------------------


def stack_files(root: Path = ROOT) -> list[Path]:
    return sorted(root.glob("Pulumi.*.yaml"))


def switched_off(settings: Settings) -> list[str]:
    """The boolean settings (field names) that are off in `settings`."""
    return sorted(
        name
        for section, model in SECTIONS.items()
        for name, info in model.model_fields.items()
        if info.annotation is bool and getattr(getattr(settings, section), name) is False
    )


def lock_variants(config: StackConfig, settings: Settings) -> Iterator[StackConfig]:
    """`config`, then `config` with each boolean setting that is off turned on (one at a time, then all at
    once), where the settings stay valid: the charts' optional parts (node-exporter, ...) get rendered too."""
    yield config
    off = switched_off(settings)
    candidates = [{config_key(name): "true"} for name in off]
    if len(off) > 1:
        candidates.append({config_key(name): "true" for name in off})
    for overrides in candidates:
        variant = with_overrides(config, overrides)
        try:
            settings_from_config(variant)
        except SettingsError:
            continue
        yield variant


def lock_releases(paths: Sequence[Path]) -> list[ChartRelease]:
    """Every Helm Release the program registers for each stack file and each of its lock variants."""
    found: dict[ChartRelease, None] = {}
    for path in paths:
        stack = path.name.split(".")[1]
        config = read_stack_file(path)
        settings = settings_from_config(config, source=str(path))
        for variant in lock_variants(config, settings):
            for release in releases(render(variant, stack)):
                found[release] = None
    return list(found)


def lock_text(manifests: Mapping[ChartRelease, str]) -> str:
    entries = {
        f"{release.key} {release.version} {qualified(image)}"
        for release, manifest in manifests.items()
        for image in manifest_images(manifest)
    }
    return LOCK_HEADER + "".join(f"{line}\n" for line in sorted(entries))


def build_lock(charts: Path, work: Path, helm: Callable[[], str] | None = None) -> str:
    found = lock_releases(stack_files())
    if not found:
        raise ImagesError("no stack file registers a Helm Release: nothing to lock")
    return lock_text(render_charts(found, ChartSource(work, charts=charts), (helm or helm_binary)()))


def default_charts() -> Path:
    from tools.chart_repository import ChartSourcesMissingError, chart_sources_folder  # noqa: PLC0415

    try:
        return chart_sources_folder()
    except ChartSourcesMissingError as error:
        raise ImagesError(str(error)) from None


# --- the command -----------------------------------------------------------------------------------------


def _lock_mode(args: argparse.Namespace) -> int:
    name = str(LOCK_FILE.relative_to(ROOT))
    if not LOCK_FILE.is_file():
        if args.check_lock:
            print(f"{name} is missing: run `python -m tools.images --write-lock` and commit it", file=sys.stderr)
            return EXIT_FAILED
        # The program reads the lock (the registries it mirrors) but renders the same Releases without it.
        LOCK_FILE.write_text(LOCK_HEADER)
    charts = args.charts or default_charts()
    with tempfile.TemporaryDirectory(prefix="meshlab-images-") as work:
        text = build_lock(charts, Path(work))
    if args.write_lock:
        LOCK_FILE.write_text(text)
        count = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        print(f"{LOCK_FILE.relative_to(ROOT)}: {count} images of {len(versions.CHARTS)} charts", file=sys.stderr)
        return 0
    current = LOCK_FILE.read_text()
    if current == text:
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            current.splitlines(keepends=True), text.splitlines(keepends=True), name, f"{name} (as rendered now)"
        )
    )
    print(f"{name} is stale: run `python -m tools.images --write-lock` and commit it", file=sys.stderr)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", nargs="?", help="stack name, e.g. lab, staging, prod")
    parser.add_argument("--config-file", type=Path, help="stack config file (default: Pulumi.STACK.yaml)")
    parser.add_argument("--charts", type=Path, help="a folder of the charts (unpacked or .tgz) instead of repositories")
    parser.add_argument("--skip-rke2", action="store_true", help="leave out RKE2's system images")
    parser.add_argument("--mirror", metavar="HOST[/PREFIX]", help="print SOURCE DESTINATION pairs for this mirror")
    parser.add_argument("--origin", action="store_true", help="add where each image comes from")
    lock = parser.add_mutually_exclusive_group()
    lock.add_argument("--write-lock", action="store_true", help=f"write {LOCK_FILE.relative_to(ROOT)}")
    lock.add_argument("--check-lock", action="store_true", help=f"exit 1 if {LOCK_FILE.relative_to(ROOT)} is stale")
    args = parser.parse_args(argv)
    locking = args.write_lock or args.check_lock
    if locking and (args.stack or args.config_file or args.skip_rke2 or args.mirror or args.origin):
        parser.error("--write-lock and --check-lock take only --charts: they render every stack file")
    if not locking and not args.stack:
        parser.error("name a stack (or --write-lock, --check-lock)")
    try:
        if locking:
            try:
                return _lock_mode(args)
            except SettingsError as error:  # a stack file the lock renders is invalid
                print(error, file=sys.stderr)
                return EXIT_INVALID_CONFIG
        mirror = _checked_mirror(args.mirror) if args.mirror is not None else ""
        try:
            path = cli.stack_config_file(args.stack, args.config_file)
        except cli.UnknownStackError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_INVALID_CONFIG
        try:
            config = read_stack_file(path, stack=args.stack)
            settings = settings_from_config(config, source=str(path))
        except SettingsError as error:
            print(error, file=sys.stderr)
            return EXIT_INVALID_CONFIG
        if args.skip_rke2 and not settings.cluster.existing:
            print("tools.images: RKE2's system images are left out (--skip-rke2)", file=sys.stderr)
        rendering = render(config, args.stack)
        with tempfile.TemporaryDirectory(prefix="meshlab-images-") as work:
            source = ChartSource(Path(work), charts=args.charts, cache=cache_root(settings))
            images = stack_images(settings, rendering, source, skip_rke2=args.skip_rke2)
    except ImagesError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print("\n".join(output_lines(images, mirror, args.origin)))
    return 0


if __name__ == "__main__":
    from tools.cli import run

    run(main)
