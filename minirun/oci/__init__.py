"""The runc command-line contract: `minirun-oci create/start/state/kill/delete/run` on bundles.

A bundle is a directory with config.json (the OCI runtime spec) and a root filesystem; podman,
containerd and Kubernetes drive a runtime through this command line, once per container
operation, so it is argparse (no typer, rich or pyroute2) and imports only what a verb uses.
`main.py` parses and prints; `container.py` is the lifecycle over a state directory.

Reference: the OCI runtime spec's runtime.md (the lifecycle and the state) and runc(8).
"""
