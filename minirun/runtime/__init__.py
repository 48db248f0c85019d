"""The runtime core: containers from spec to exit."""
