"""A small cluster on one machine: Linux network namespaces joined by veth pairs.

``hub`` (tracking server and chief) has one veth pair to each worker namespace; each link is
its own /24 inside 10.231.0.0/16 (addresses that exist only inside the test's namespaces).
Everything is torn down by :meth:`Cluster.close`: processes killed, namespaces deleted (which
deletes their veths).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


class Unavailable(RuntimeError):
    """Namespaces cannot be made here (the message says why)."""


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {out.stderr.strip()}")
    return out


@dataclass
class Cluster:
    prefix: str
    hosts: list[str]
    links: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # host -> veths, hub ip
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{self.prefix}hub"

    def ns(self, host: str) -> str:
        return f"{self.prefix}{host}"

    def hub_ip(self, host: str) -> str:
        """The hub's address as seen from ``host`` (the far end of host's link)."""
        return self.links[host][2]

    def popen(self, host: str | None, command: list[str], *, env: dict[str, str], cwd: Path,
              log: Path) -> subprocess.Popen[bytes]:
        ns = self.hub if host is None else self.ns(host)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *command], env=env, cwd=cwd,
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill_host(self, host: str) -> list[int]:
        """kill -9 every process in ``host``'s namespace (the machine lost its power)."""
        out = subprocess.run(["ip", "netns", "pids", self.ns(host)], capture_output=True,
                             text=True, timeout=30)
        pids = [int(p) for p in out.stdout.split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def link(self, host: str, up: bool) -> None:
        """Bring ``host``'s cable down or up (the hub's end)."""
        _ip("link", "set", self.links[host][0], "up" if up else "down", ns=self.hub)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for ns in [self.hub, *map(self.ns, self.hosts)]:
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                 timeout=30)
            for pid in out.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _ip("netns", "del", ns, check=False)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def build(hosts: list[str]) -> Cluster:
    """The hub and one namespace per host, each linked to the hub; raises Unavailable."""
    if os.geteuid() != 0:
        raise Unavailable("network namespaces need root (ip netns add)")
    if shutil.which("ip") is None:
        raise Unavailable("the 'ip' command (iproute2) is not installed")
    cluster = Cluster(f"tt{os.getpid() % 100000}", hosts)
    out = _ip("netns", "add", cluster.hub, check=False)
    if out.returncode != 0:
        raise Unavailable(f"ip netns add failed: {out.stderr.strip()}")
    try:
        _ip("link", "set", "lo", "up", ns=cluster.hub)
        for i, host in enumerate(hosts, start=1):
            ns = cluster.ns(host)
            hub_end, host_end = f"{cluster.prefix}h{i}", f"{cluster.prefix}w{i}"
            _ip("netns", "add", ns)
            _ip("link", "set", "lo", "up", ns=ns)
            _ip("link", "add", hub_end, "type", "veth", "peer", "name", host_end)
            _ip("link", "set", hub_end, "netns", cluster.hub)
            _ip("link", "set", host_end, "netns", ns)
            hub_ip, host_ip = f"10.231.{i}.1", f"10.231.{i}.2"
            _ip("addr", "add", f"{hub_ip}/24", "dev", hub_end, ns=cluster.hub)
            _ip("addr", "add", f"{host_ip}/24", "dev", host_end, ns=ns)
            _ip("link", "set", hub_end, "up", ns=cluster.hub)
            _ip("link", "set", host_end, "up", ns=ns)
            cluster.links[host] = (hub_end, host_end, hub_ip)
    except BaseException:
        cluster.close()
        raise
    return cluster
