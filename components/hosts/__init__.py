"""The hosts layer: the machines the cluster runs on, from one of three backends behind one contract.

`meshlab:hypervisor` picks the backend (`backends.lab_hosts`); each is a component of its own that
hands the cluster layer a `HostsOutput` (`output.py`: the nodes as `HostNode`s, the SSH login, the
NIC the cluster binds to), so nothing above this layer knows which one ran:

- `virtualbox/`: VirtualBox VMs on a host-only network (`meshlab:hosts:LabHosts`), the default;
- `qemu/`: QEMU/KVM VMs on a Linux bridge (`meshlab:hosts:QemuHosts`), for Linux workstations;
- `existing/`: machines that already exist, reached over SSH (`meshlab:hosts:ExistingHosts`).

Shared here: the contract (`output.py`), the dispatcher (`backends.py`), what both VM backends build
on (`vm.py`: sizes, the seed step, the boot waits, and the `SshAccess` every backend hands on;
`cloud_init.py`, `seed_iso.py`, `image.py`), the step runner (`steps.py`), and in `scripts/` the
helpers every step script is rendered with (`common.sh`) and the VM backends' common steps. Each
backend's own step scripts are in its `scripts/` sub-package.
"""
