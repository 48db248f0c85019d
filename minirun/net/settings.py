"""Per data root network settings: ROOT/net/config.json (all keys optional).

    {"bridge": "minirun0",          the default network's bridge interface
     "subnet": "10.87.0.0/16",      the default network's subnet (its .1 is the gateway)
     "pool": "10.86.0.0/16",        where `network create` without --subnet takes subnets from
     "pool_prefix": 24,             ... of this size
     "table": "minirun"}            the nftables table (family ip) holding minirun's rules

Two data roots on one host must not share a bridge, a subnet or a table; the tests give each
of their roots its own file. Docker's 172.17.0.0/16 and podman's 10.88.0.0/16 are avoided on
purpose, so all three can run side by side; a subnet that overlaps a route the host already has
is refused when the bridge is made.
"""

from __future__ import annotations

import json
from pathlib import Path

from minirun.errors import UsageError

DEFAULTS = {"bridge": "minirun0", "subnet": "10.87.0.0/16", "pool": "10.86.0.0/16",
            "pool_prefix": 24, "table": "minirun"}


class Settings:
    def __init__(self, **values):
        merged = dict(DEFAULTS, **values)
        self.bridge: str = merged["bridge"]
        self.subnet: str = merged["subnet"]
        self.pool: str = merged["pool"]
        self.pool_prefix: int = int(merged["pool_prefix"])
        self.table: str = merged["table"]

    @classmethod
    def load(cls, root: Path) -> Settings:
        path = root / "net" / "config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as e:
            raise UsageError(f"{path}: not valid JSON ({e})") from None
        unknown = set(data) - set(DEFAULTS)
        if unknown:
            raise UsageError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**data)

    def save(self, root: Path) -> None:
        (root / "net").mkdir(parents=True, exist_ok=True)
        values = {key: getattr(self, key) for key in DEFAULTS}
        (root / "net" / "config.json").write_text(json.dumps(values, indent=1) + "\n")


def private(root: Path, tag: str) -> Settings:
    """Settings of a throwaway data root's own (tests, benchmarks, the demo): a bridge and an nft
    table named after `tag` + the root's name, and a /16 of 10.128-249.x.x that no host route
    uses (the default network takes its first /24, user networks the rest). Saved in the root."""
    import hashlib
    import random

    from minirun.net.addresses import host_routes, overlaps

    taken = [r for _, r in host_routes()]
    candidates = [n for n in range(128, 250)
                  if not any(overlaps(((10 << 24) | (n << 16), 16), t) for t in taken)]
    if not candidates:
        raise UsageError("no free 10.X.0.0/16 left for a private network")
    second = random.choice(candidates)
    suffix = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    settings = Settings(bridge=f"{tag}{suffix}"[:15], subnet=f"10.{second}.0.0/24",
                        pool=f"10.{second}.0.0/16", table=f"minirun_{tag}{suffix}")
    settings.save(root)
    return settings
