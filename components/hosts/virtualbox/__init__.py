"""The VirtualBox backend (`meshlab:hypervisor: virtualbox`, the default): one VirtualBox VM per node,
each with a NAT NIC and a NIC on one host-only network the workstation is on, driven by `VBoxManage`
from the workstation (`meshlab:hosts:LabHosts`). Runs on Linux and macOS (Intel, Apple Silicon)."""
