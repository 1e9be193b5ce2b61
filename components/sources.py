"""Where the Kubernetes layers' charts and manifests come from: upstream, or the site's mirror
(meshlab:chartRepository, meshlab:gatewayApiCrdsUrl). Versions and checksums stay pinned in config/versions.py
whatever the source; a mirror only changes where the same files are read from."""

from __future__ import annotations

from dataclasses import dataclass

from config import versions
from config.settings import SourcesSettings


@dataclass(frozen=True)
class Sources:
    # One Helm repository serving every pinned chart; empty for each chart's own upstream repository.
    chart_repository: str = ""
    gateway_api_crds: str = versions.GATEWAY_API_CRDS_URL

    @classmethod
    def of(cls, settings: SourcesSettings) -> Sources:
        return cls(
            chart_repository=settings.chart_repository.rstrip("/"),
            gateway_api_crds=settings.gateway_api_crds_url or versions.GATEWAY_API_CRDS_URL,
        )

    def repository(self, chart: str) -> str:
        """The repository that serves `chart` (a key of versions.CHARTS)."""
        return self.chart_repository or versions.CHARTS[chart].repository
