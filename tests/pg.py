"""A throw-away PostgreSQL server for the tests (initdb in a temporary folder, a free port).

Installed by the project's own ``scripts/install_postgres.sh`` where it is missing (Debian's
package, as root or with password-less sudo). PostgreSQL refuses to run as root: as root the
server runs as the ``postgres`` user (``runuser``). :func:`start` raises :class:`Unavailable`
with the reason when none of that is possible, and the tests skip with that reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "scripts" / "install_postgres.sh"
USER = DB = "tunetrack"


class Unavailable(RuntimeError):
    """PostgreSQL cannot be installed or started here (the message says why)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def _install() -> Path:
    if bindir() is None:
        out = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise Unavailable(f"PostgreSQL is not installed and {INSTALL.name} could not "
                              f"install it: {(out.stderr or out.stdout).strip()[-300:]}")
    found = bindir()
    if found is None:
        raise Unavailable("PostgreSQL's initdb is not on PATH nor in /usr/lib/postgresql/*/bin")
    return found


@dataclass
class Postgres:
    bin: Path
    data: Path
    port: int
    as_user: list[str]

    @property
    def uri(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DB}"

    def run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True,
                              text=True, timeout=timeout, cwd="/")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.data.parent, ignore_errors=True)


def start() -> Postgres:
    """initdb, start on a free loopback port, create the ``tunetrack`` database."""
    bin_ = _install()
    folder = Path(tempfile.mkdtemp(prefix="tunetrack-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise Unavailable("running as root without runuser: PostgreSQL refuses to run as root")
        try:
            import pwd

            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run "
                              "PostgreSQL as") from None
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = Postgres(bin_, folder / "data", free_port(), as_user)
    steps = [("initdb", "-D", str(server.data), "-U", USER, "-A", "trust", "--no-sync",
              "-E", "UTF8"),
             ("pg_ctl", "-D", str(server.data), "-l", str(folder / "log"), "-w", "-t", "60",
              "-o", f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start"),
             ("createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", USER, DB)]
    for tool, *args in steps:
        out = server.run(tool, *args)
        if out.returncode != 0:
            log = (folder / "log").read_text()[-500:] if (folder / "log").exists() else ""
            server.stop()
            raise Unavailable(f"{tool} failed: {(out.stderr or out.stdout).strip()[-400:]} "
                              f"{log}".strip())
    return server


def wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    """Until ``url`` answers; raises if ``proc`` ends or time runs out."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer (exit status {proc.poll()})") from None
            time.sleep(0.5)
