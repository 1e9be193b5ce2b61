"""The hosts layer: VirtualBox VMs on a host-only network, reachable over SSH."""
