"""The cluster layer: RKE2 HA (CIS) with Cilium, kube-vip and an NFS export, reached through SSH."""
