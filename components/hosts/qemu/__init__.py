"""The QEMU/KVM backend (`meshlab:hypervisor: qemu`): one `qemu-system-*` process per node, with a
user-mode NAT NIC and a tap on a Linux bridge the workstation is on (`meshlab:hosts:QemuHosts`); KVM
where the host has it, TCG otherwise. Runs on Linux workstations, without libvirt."""
