"""The network layer: Gateway API, MetalLB and the ingress gateway."""
