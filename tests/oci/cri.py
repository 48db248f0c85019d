"""A tiny client of the Kubernetes CRI (runtime.v1), enough to do what the kubelet does for one
pod: RunPodSandbox, CreateContainer, StartContainer, ExecSync, ContainerStatus, StopContainer,
RemoveContainer, StopPodSandbox, RemovePodSandbox. Debian 12 has no crictl, so the tests speak
CRI themselves: gRPC from grpcio, the few protobuf messages written in the wire format by hand
(field numbers from cri-api's api.proto; https://protobuf.dev/programming-guides/encoding/).
"""

from __future__ import annotations

from typing import Any

# NamespaceMode (NamespaceOption.network/pid/ipc)
POD, CONTAINER, NODE = 0, 1, 2
# ContainerState
CREATED, RUNNING, EXITED = 0, 1, 2


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1           # negative int64s are ten bytes, as protobuf writes them
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def msg(*fields: tuple[int, Any]) -> bytes:
    """Encode (number, value) pairs: int -> varint, str/bytes -> length-delimited (an embedded
    message is bytes from msg()), list -> repeated. Zero values are left out, as proto3 does."""
    out = bytearray()
    for num, value in fields:
        for v in value if isinstance(value, list) else [value]:
            if v is None or v == 0 or v == "" or v == b"":
                continue
            if isinstance(v, int):
                out += _varint(num << 3) + _varint(v)
            else:
                data = v.encode() if isinstance(v, str) else v
                out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def decode(data: bytes) -> dict[int, list]:
    """{field number: [values]}: varints as int, length-delimited fields as bytes."""
    out: dict[int, list] = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        kind = key & 7
        if kind == 0:
            value, i = _read_varint(data, i)
        elif kind == 2:
            size, i = _read_varint(data, i)
            value, i = data[i:i + size], i + size
        elif kind in (1, 5):
            size = 8 if kind == 1 else 4
            value, i = data[i:i + size], i + size
        else:
            raise ValueError(f"protobuf wire type {kind} at byte {i}")
        out.setdefault(key >> 3, []).append(value)
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = data[i]
        i += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return n, i


class Cri:
    def __init__(self, socket: str):
        import grpc

        self.channel = grpc.insecure_channel(f"unix://{socket}")

    def close(self) -> None:
        self.channel.close()

    def call(self, method: str, body: bytes, timeout: float = 60) -> dict[int, list]:
        rpc = self.channel.unary_unary(f"/runtime.v1.RuntimeService/{method}")
        return decode(rpc(body, timeout=timeout))

    def version(self) -> str:
        return self.call("Version", msg((1, "v1")))[2][0].decode()      # runtime_name

    def run_pod(self, config: bytes, handler: str) -> str:
        return self.call("RunPodSandbox", msg((1, config), (2, handler)))[1][0].decode()

    def create(self, pod: str, config: bytes, pod_config: bytes) -> str:
        return self.call("CreateContainer", msg((1, pod), (2, config), (3, pod_config)))[1][0].decode()

    def start(self, cid: str) -> None:
        self.call("StartContainer", msg((1, cid)))

    def exec_sync(self, cid: str, cmd: list[str], timeout: int = 10) -> tuple[str, int]:
        r = self.call("ExecSync", msg((1, cid), (2, cmd), (3, timeout)))
        return r.get(1, [b""])[0].decode(), r.get(3, [0])[0]

    def status(self, cid: str) -> tuple[int, int]:
        """(ContainerState, exit code)."""
        st = decode(self.call("ContainerStatus", msg((1, cid)))[1][0])
        return st.get(3, [CREATED])[0], st.get(7, [0])[0]

    def stop(self, cid: str, timeout: int) -> None:
        self.call("StopContainer", msg((1, cid), (2, timeout)))

    def remove(self, cid: str) -> None:
        self.call("RemoveContainer", msg((1, cid)))

    def remove_pod(self, pod: str) -> None:
        self.call("StopPodSandbox", msg((1, pod)))
        self.call("RemovePodSandbox", msg((1, pod)))


def pod_config(name: str, log_dir: str, cgroup_parent: str) -> bytes:
    """PodSandboxConfig: metadata, log directory; Linux: the cgroup parent and namespaces as a
    hostNetwork pod has them (no CNI here): network NODE, pid CONTAINER, ipc POD. No hostname:
    the kubelet sets none for a hostNetwork pod, whose UTS namespace is the node's (a hostname
    without a UTS namespace of its own is refused by runc and minirun-oci alike)."""
    namespaces = msg((1, NODE), (2, CONTAINER), (3, POD))
    return msg((1, msg((1, name), (2, f"uid-{name}"), (3, "default"))),
               (3, log_dir), (8, msg((1, cgroup_parent), (2, msg((1, namespaces))))))


def container_config(name: str, image: str, command: list[str], args: list[str], log: str,
                     memory: int = 0) -> bytes:
    """ContainerConfig: metadata, image, command, args, log path (relative to the pod's log
    directory), Linux resources memory_limit_in_bytes."""
    return msg((1, msg((1, name))), (2, msg((1, image))), (3, command), (4, args), (11, log),
               (15, msg((1, msg((4, memory))))))
