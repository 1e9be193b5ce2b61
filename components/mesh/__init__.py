"""The mesh layer: Istio ambient and its certificate authority."""
