"""Joining or starting the Ray cluster behind ``solve --ray``, loopback-only when local.

``--ray`` with no address starts a Ray instance inside this process (it ends
with the run); ``--ray auto`` joins the cluster that ``ray start`` left on this
machine; ``--ray HOST:PORT`` joins the head node's GCS there; ``--ray
ray://HOST:PORT`` goes through Ray Client.

Network decisions (a local run must not listen on, or talk to, any address but
127.0.0.1):

* Ray turns a loopback node address into the machine's routable one
  (``resolve_ip_for_localhost``) unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
  ("local mode": the node address is 127.0.0.1).  With the node address on
  loopback, the GCS, the raylets, every worker's gRPC server and the runtime-env
  agent bind 127.0.0.1; without it they bind the wildcard address.  So a local
  instance, and a cluster whose head is given as 127.0.0.1/localhost, run with
  that variable set to 0 (set before ``import ray``: Ray reads it at import).
* ``RAY_USAGE_STATS_ENABLED=0``: no usage report leaves the machine.
* ``include_dashboard=False``: no dashboard process or port.
* Ray's own log lines are kept off the terminal (``logging_level`` ERROR,
  ``log_to_driver=False``): the driver prints its own one-line messages;
  workers report failures as values the driver prints.

A real cluster cannot be loopback-only: its nodes talk over the network, and
Ray's servers then bind every interface; docs/ray.md says what to do there.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from raas_local.errors import InputError, RaasError

__all__ = [
    "INSTALL_HINT",
    "ClusterInfo",
    "RayMissingError",
    "add_ray_flags",
    "connect",
    "disconnect",
    "import_ray",
    "is_loopback_address",
    "parse_address",
]

INSTALL_HINT = "pip install 'raas-local[ray]'"
LOCAL = "local"  # --ray with no address

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class RayMissingError(RaasError):
    """``--ray`` without the optional Ray extra installed."""

    exit_code = 4


def parse_address(text: str) -> str:
    """argparse type of ``--ray``'s value: ``auto``, ``ray://HOST:PORT``, ``HOST:PORT`` (``local``: no address)."""
    import argparse

    text = text.strip()
    if text in (LOCAL, "auto") or (text.startswith("ray://") and _HOST_PORT.match(text[len("ray://"):])):
        return text
    if _HOST_PORT.match(text):
        return text
    raise argparse.ArgumentTypeError(
        f"not a Ray address: {text!r} (use auto, HOST:PORT or ray://HOST:PORT; put PROBLEMS before --ray)"
    )


def add_ray_flags(p) -> None:
    """``--ray [ADDRESS]`` and ``--workers K`` on solve's parser (Ray itself is imported only when used)."""
    from raas_local.argtypes import positive_int

    p.add_argument("--ray", nargs="?", const=LOCAL, default=None, type=parse_address, metavar="ADDRESS",
                   help="solve on Ray: no ADDRESS starts a local instance; auto, HOST:PORT or ray://HOST:PORT "
                        f"joins a cluster (needs: {INSTALL_HINT})")
    p.add_argument("--workers", type=positive_int, default=None, metavar="K",
                   help="with --ray: worker actors (default: one per GPU with -ngl, else the cluster's CPUs / threads)")


def _host(address: str) -> str:
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    return rest.rsplit(":", 1)[0]


def _auto_target() -> str | None:
    """What ``auto`` joins: ``$RAY_ADDRESS``, else the address ``ray start`` left in Ray's temp folder."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    import tempfile
    from pathlib import Path

    f = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), "ray", "ray_current_cluster")
    try:
        return f.read_text().strip() or None
    except OSError:
        return None


def is_loopback_address(address: str) -> bool:
    """True for no address (a local instance) and for a head on 127.0.0.1/localhost/::1 (``auto`` too)."""
    if address == "auto":
        target = _auto_target()
        return target is not None and target != "auto" and is_loopback_address(target)
    return address == LOCAL or _host(address) in _LOOPBACK_HOSTS


def loopback_environment() -> dict[str, str]:
    """What a Ray process on this machine needs in its environment to stay on 127.0.0.1."""
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def import_ray(address: str = LOCAL) -> Any:
    """``import ray`` with the network settings of ``address``; a one-line error without Ray."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if is_loopback_address(address):
        os.environ.update(loopback_environment())
    try:
        import ray
    except ImportError:
        raise RayMissingError(f"--ray needs Ray, which is not installed; install it with: {INSTALL_HINT}") from None
    return ray


@dataclass
class ClusterInfo:
    address: str  # what the user gave ("local" for a fresh local instance)
    cpus: float
    gpus: float
    nodes: list[dict]  # ray.nodes() entries of the alive nodes


def connect(address: str) -> ClusterInfo:
    """Start (no address) or join (``address``) Ray; what the cluster has."""
    ray = import_ray(address)
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                                  configure_logging=True)
    try:
        if address == LOCAL:
            ray.init(address="local", **kwargs)
        elif address.startswith("ray://"):
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(address=address, **{k: v for k, v in kwargs.items() if k != "include_dashboard"})
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = "start a local Ray instance" if address == LOCAL else f"join the Ray cluster at {address}"
        raise InputError(f"--ray: could not {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    return ClusterInfo(address, float(total.get("CPU", 0)), float(total.get("GPU", 0)), nodes)


def disconnect() -> None:
    """Leave the cluster (a local instance is shut down with it)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
