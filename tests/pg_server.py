"""A real PostgreSQL server for the tests: Debian's postgresql package, started on loopback with
its own data folder and stopped by its pid (``.ci/run`` installs the package where it is missing).

PostgreSQL refuses to run as root: as root, the server runs as the package's ``postgres`` user
in a folder of its own."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import List, Optional


def binaries() -> Optional[str]:
    """The folder of ``initdb`` and ``pg_ctl`` (Debian keeps them off PATH), or None."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return folders[-1] if folders else None


class PostgresServer:
    def __init__(self) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder = tempfile.mkdtemp(prefix="unitb-postgres-")
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.data = os.path.join(self.folder, "data")
        self.pid: Optional[int] = None

    def _run(self, *words: str) -> None:
        command: List[str] = [os.path.join(self.bin or "", words[0]), *words[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> "PostgresServer":
        self._run("initdb", "-D", self.data, "-U", "unitb", "--auth=trust", "-E", "UTF8")
        return self.resume()

    def resume(self) -> "PostgresServer":
        """Start the server on its data folder (again, after :meth:`pause`)."""
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.folder, "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        with open(os.path.join(self.data, "postmaster.pid")) as handle:
            self.pid = int(handle.readline())
        return self

    def pause(self) -> None:
        """Stop the server, keeping its data: clients get errors until :meth:`resume`."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        self.pid = None

    def database(self, name: str) -> str:
        """A new database's SQLAlchemy URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "unitb", name)
        return f"postgresql://unitb@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
                for _ in range(100):
                    os.kill(self.pid, 0)
                    time.sleep(0.1)
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
