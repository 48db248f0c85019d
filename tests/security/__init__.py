"""Security features checked from inside containers (seccomp; later: devices, user namespaces)."""
