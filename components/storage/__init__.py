"""The storage layer: dynamic NFS volumes."""
