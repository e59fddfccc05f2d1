"""The notebook tests' kernels start without racing anyone for a TCP port (see the root conftest.py).

jupyter_client picks a kernel's five TCP ports by binding port 0 and closing
the sockets; the kernel binds them a moment later. When other processes bind
port 0 in between (parallel workers' kernels and lab servers), the kernel dies
before it starts. Where ZeroMQ has IPC, the kernels use it (no port at all);
elsewhere a kernel that dies that way is started again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.notebook

zmq = pytest.importorskip("zmq")
nbval_kernel = pytest.importorskip("nbval.kernel")

KERNEL_DIED = "Kernel died before replying to kernel_info"


IPC = os.name == "posix" and zmq.has("ipc")


@pytest.mark.skipif(not IPC, reason="no IPC transport for kernels here (Windows): they use TCP, with a retry")
def test_nbval_kernels_use_ipc_in_a_private_folder_from_any_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel runs in another folder than pytest (a notebook's folder): its sockets must still be found."""
    kernel_folder = tmp_path / "kernel-cwd"
    kernel_folder.mkdir()
    monkeypatch.chdir(tmp_path)
    kernel = nbval_kernel.RunningKernel(nbval_kernel.CURRENT_ENV_KERNEL_NAME, cwd=str(kernel_folder))
    try:
        info = kernel.km.get_connection_info()
        assert info["transport"] == "ipc"
        assert os.path.isabs(info["ip"]) and not info["ip"].startswith(str(tmp_path)), info["ip"]
        assert len(f"{info['ip']}-{info['hb_port']}".encode()) < 104, (
            "a Unix socket path must stay short (macOS)"
        )
        reply = kernel.kc.execute_interactive(
            f"import os; assert os.path.samefile(os.getcwd(), {str(kernel_folder)!r})", timeout=60
        )
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kernel.stop()
    assert not any(Path(info["ip"]).parent.glob(Path(info["ip"]).name + "-*")), "the socket files are removed"


def test_a_tcp_kernel_whose_port_was_taken_in_between_dies_before_it_starts(tmp_path: Path) -> None:
    """The failure IPC avoids, made to happen: a port picked for the kernel is bound by someone else first."""
    from jupyter_client.manager import KernelManager

    # cache_ports=False: jupyter_client's port cache would pick the ports again at start (it keeps
    # one process from reusing its own; other processes can still take them, as here).
    manager = KernelManager(
        kernel_name="python3",
        transport="tcp",
        connection_file=str(tmp_path / "kernel.json"),
        cache_ports=False,
    )
    manager.write_connection_file()  # picks five free ports by binding port 0, and releases them
    with socket.create_server((manager.ip, manager.shell_port)):  # another process binds one a moment later
        manager.start_kernel(stderr=open(os.devnull, "w"))  # noqa: SIM115 (the kernel process owns it)
        client = manager.client()
        client.start_channels()
        try:
            with pytest.raises(RuntimeError, match=KERNEL_DIED):
                client.wait_for_ready(timeout=60)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)


def test_kernel_options_differ_for_every_kernel(kernel_options: Callable[[], dict[str, str]]) -> None:
    first, second = kernel_options(), kernel_options()
    if IPC:
        assert first["transport"] == second["transport"] == "ipc"
        assert first["ip"] != second["ip"], "two kernels must never share socket names"
    else:
        assert first == second == {}, "without IPC, jupyter_client's TCP defaults"


def test_a_kernel_that_dies_before_it_starts_is_started_again(
    kernel_start_with_retry: Callable[..., Any],
) -> None:
    attempts: list[int] = []

    def start() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError(KERNEL_DIED)
        return "started"

    assert kernel_start_with_retry(start) == "started"
    assert len(attempts) == 2


def test_other_kernel_errors_are_not_retried(kernel_start_with_retry: Callable[..., Any]) -> None:
    attempts: list[int] = []

    def start() -> None:
        attempts.append(1)
        raise RuntimeError("Kernel didn't respond in 60 seconds")

    with pytest.raises(RuntimeError, match="didn't respond"):
        kernel_start_with_retry(start)
    assert len(attempts) == 1


def test_a_kernel_that_always_dies_fails_after_three_attempts(
    kernel_start_with_retry: Callable[..., Any],
) -> None:
    attempts: list[int] = []

    def start() -> None:
        attempts.append(1)
        raise RuntimeError(KERNEL_DIED)

    with pytest.raises(RuntimeError, match=KERNEL_DIED):
        kernel_start_with_retry(start)
    assert len(attempts) == 3
