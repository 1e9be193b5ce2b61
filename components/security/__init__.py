"""The security layer: namespaces labelled for Pod Security, and Kyverno."""
