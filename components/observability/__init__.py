"""The observability layer: Prometheus, Grafana, Kiali and the Hubble UI."""
