"""The servers of one benchmark sample, each in its own process on 127.0.0.1.

The LangSmith emulator (``langsmith-bridge emulator``) and, for ``--store aws``, a counting
moto server (``moto_counting.py``). Each is killed when the ``sample_servers`` block exits,
whatever happens inside it. Their peak RSS (``VmHWM``) and CPU time are read from /proc.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from run_setup import EMULATOR_RATE_LIMIT, REGION, TABLE

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """One server process and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    url: str = ""

    def peak_rss_kib(self) -> int:
        """``VmHWM`` of the process: its peak resident set so far, in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        """User plus system CPU seconds the process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text(encoding="utf-8")
        after_name = fields.rsplit(")", 1)[1].split()
        return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``STOP_TIMEOUT_S``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)


@dataclass
class SampleServers:
    """The servers of one sample: the emulator, and moto when AWS is served over HTTP."""

    emulator: Server
    bootstrap_file: Path
    moto: Server | None = None

    @property
    def all(self) -> list[Server]:
        return [server for server in (self.emulator, self.moto) if server is not None]

    def cpu_s(self) -> dict[str, float]:
        return {server.name: server.cpu_s() for server in self.all}

    def peak_rss_kib(self) -> dict[str, int]:
        return {server.name: server.peak_rss_kib() for server in self.all}

    def aws_counts(self) -> Counter[str]:
        """What the moto server has served so far, by action (empty without moto)."""
        if self.moto is None:
            return Counter()
        response = httpx.get(f"{self.moto.url}/_counts", timeout=10.0)
        response.raise_for_status()
        return Counter(response.json())


@contextmanager
def sample_servers(store: str, folder: Path, latency_ms: float) -> Iterator[SampleServers]:
    """Start the servers ``store`` needs; every one is stopped on exit."""
    with ExitStack() as stack:
        emulator, bootstrap = _start_emulator(folder, latency_ms, stack)
        servers = SampleServers(emulator, bootstrap)
        if store == "aws":
            servers.moto = _start_moto(folder, stack)
            create_table(servers.moto.url)
        yield servers


def _start_emulator(folder: Path, latency_ms: float, stack: ExitStack) -> tuple[Server, Path]:
    bootstrap = folder / "emulator.json"
    command = [
        str(BIN / "langsmith-bridge"),
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--bootstrap-file",
        str(bootstrap),
        "--latency-ms",
        str(latency_ms),
        "--rate-limit",
        str(EMULATOR_RATE_LIMIT),
    ]
    server = _spawn("emulator", command, folder, stack)
    _wait_for_file(bootstrap, server, folder)
    server.url = json.loads(bootstrap.read_text(encoding="utf-8"))["endpoint"]
    return server, bootstrap


def _start_moto(folder: Path, stack: ExitStack) -> Server:
    port_file = folder / "moto.port"
    command = [sys.executable, str(HERE / "moto_counting.py"), "--port-file", str(port_file)]
    server = _spawn("moto", command, folder, stack)
    _wait_for_file(port_file, server, folder)
    server.url = f"http://127.0.0.1:{port_file.read_text(encoding='utf-8').strip()}"
    return server


def _spawn(name: str, command: list[str], folder: Path, stack: ExitStack) -> Server:
    log = stack.enter_context((folder / f"{name}.log").open("wb"))
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = Server(name, process)
    stack.callback(server.stop)
    return server


def _wait_for_file(path: Path, server: Server, folder: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists():
        if server.process.poll() is not None or time.monotonic() > deadline:
            log = (folder / f"{server.name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} did not start:\n{log}")
        time.sleep(0.05)


def round_trip_s(latency_ms: float, requests: int = 20) -> float:
    """The median time of one sequential emulator request over keep-alive, from a client in
    its own process: the injected latency plus HTTP and the emulator's handling."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-rtt-") as tmp,
        sample_servers("file", Path(tmp), latency_ms) as servers,
    ):
        key = json.loads(servers.bootstrap_file.read_text(encoding="utf-8"))["admin_key"]
        times = []
        with httpx.Client(headers={"X-API-Key": key}, timeout=10.0) as client:
            for _ in range(requests):
                start = time.perf_counter()
                client.get(f"{servers.emulator.url}/api/v1/workspaces").raise_for_status()
                times.append(time.perf_counter() - start)
        return statistics.median(times)


def create_table(endpoint_url: str | None) -> None:
    """The DynamoDB state table, created as the bridge's schema says."""
    import boto3

    from providers.aws.dynamodb_schema import table_definition

    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint_url)
    client.create_table(**table_definition(TABLE))
