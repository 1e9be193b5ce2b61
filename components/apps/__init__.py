"""The apps layer: the hardened test app and the demo scenarios."""
