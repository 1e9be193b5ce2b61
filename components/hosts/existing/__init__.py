"""The existing-hosts backend (`meshlab:hypervisor: existing`): machines that already exist (bare metal,
cloud VMs), reached over SSH with the stack's key or the ssh-agent, optionally through a bastion
(`meshlab:hosts:ExistingHosts`). Nothing is created for them: a preflight checks them all, and each
machine outlives the stack."""
