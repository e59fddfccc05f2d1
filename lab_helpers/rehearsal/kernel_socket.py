"""A kernel driven over jupyter_server's websocket, the way JupyterLab drives it.

A browser never talks to a kernel directly: it opens the websocket
``/api/kernels/KERNEL_ID/channels?session_id=...`` of the Jupyter server, and the server
relays each message to the kernel's ZeroMQ channels (shell, iopub, stdin, control).
JupyterLab asks for the subprotocol ``v1.kernel.websocket.jupyter.org``, which
jupyter_server prefers (``services/kernels/websocket.py``, ``select_subprotocol``).
With it every message is one binary frame (``serialize_msg_to_ws_v1`` in
``services/kernels/connection/base.py``):

    8 bytes, little-endian: n, the number of offsets that follow
    n x 8 bytes, little-endian: offsets from the start of the frame
    the channel name (utf-8), then the message parts: header, parent header,
    metadata, content (JSON) and any binary buffers

The server signs the parts for the kernel itself, so a client sends them unsigned.
The messages are those of the Jupyter messaging protocol, version 5.3
(``execute_request``, ``execute_reply``, ``status``...).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

__all__ = ["PROTOCOL", "CellResult", "KernelSocket", "decode_frame", "encode_frame"]

PROTOCOL = "v1.kernel.websocket.jupyter.org"
MESSAGING_VERSION = "5.3"
#: iopub states that mean the kernel stopped under the cell (for example killed for lack of memory).
_DEAD_STATES = {"dead", "restarting", "autorestarting"}


def encode_frame(channel: str, parts: Sequence[bytes]) -> bytes:
    """One websocket frame of the v1 protocol: the offsets table, the channel, then the parts."""
    channel_bytes = channel.encode("utf-8")
    offsets = [8 * (1 + 1 + len(parts) + 1)]  # the table itself: its length, then 2 + len(parts) offsets
    offsets.append(offsets[-1] + len(channel_bytes))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    table = len(offsets).to_bytes(8, "little") + b"".join(offset.to_bytes(8, "little") for offset in offsets)
    return table + channel_bytes + b"".join(parts)


def decode_frame(frame: bytes) -> tuple[str, list[bytes]]:
    """The channel and the message parts of a v1 frame (the inverse of ``encode_frame``)."""
    count = int.from_bytes(frame[:8], "little")
    if count < 2 or len(frame) < 8 * (count + 1):
        raise ValueError(f"not a {PROTOCOL} frame: its offsets table is cut short")
    offsets = [int.from_bytes(frame[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    channel = frame[offsets[0] : offsets[1]].decode("utf-8")
    return channel, [frame[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]


@dataclass(frozen=True)
class CellResult:
    """What one executed cell gave: ``ok``, or the error's name and message."""

    ok: bool
    error_name: str = ""
    error_value: str = ""


class KernelSocket:
    """A connection to one kernel through its Jupyter server's websocket."""

    def __init__(self, connection: WebSocketClientConnection, session_id: str) -> None:
        self._connection = connection
        self._session_id = session_id

    @classmethod
    async def open(cls, url: str, token: str, *, timeout: float) -> KernelSocket:
        """Connect to ``ws://.../api/kernels/ID/channels`` with the API token, asking for the v1 protocol."""
        session_id = uuid.uuid4().hex
        request = HTTPRequest(
            f"{url}?session_id={session_id}",
            headers={"Authorization": f"token {token}"},
            connect_timeout=timeout,
            request_timeout=timeout,
        )
        connection = await asyncio.wait_for(
            websocket_connect(request, subprotocols=[PROTOCOL], max_message_size=256 * 1024 * 1024), timeout
        )
        if connection.selected_subprotocol != PROTOCOL:
            connection.close()
            raise ConnectionError(f"the server did not accept the {PROTOCOL} subprotocol")
        return cls(connection, session_id)

    def close(self) -> None:
        self._connection.close()

    async def _send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        message_id = uuid.uuid4().hex
        header = {
            "msg_id": message_id,
            "msg_type": msg_type,
            "session": self._session_id,
            "username": "rehearsal",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "version": MESSAGING_VERSION,
        }
        parts = [json.dumps(part).encode("utf-8") for part in (header, {}, {}, content)]
        await self._connection.write_message(encode_frame(channel, parts), binary=True)
        return message_id

    async def _receive(self, deadline: float) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The next message: its channel, header, parent header and content. TimeoutError at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            frame = await asyncio.wait_for(self._connection.read_message(), remaining)
        except asyncio.TimeoutError:  # not the built-in TimeoutError before Python 3.11
            raise TimeoutError from None
        if frame is None:
            raise ConnectionError("the server closed the kernel's websocket")
        if isinstance(frame, str):  # only the legacy protocol sends text frames
            raise ConnectionError("the server answered in the legacy JSON protocol, not v1")
        channel, parts = decode_frame(frame)
        header, parent, _metadata, content = (json.loads(part) for part in parts[:4])
        return channel, header, parent, content

    async def wait_ready(self, timeout: float) -> None:
        """Ask for ``kernel_info`` (as JupyterLab does on connecting) and wait for the reply."""
        deadline = time.monotonic() + timeout
        request_id = await self._send("shell", "kernel_info_request", {})
        while True:
            channel, header, parent, _content = await self._receive(deadline)
            if (
                channel == "shell"
                and header["msg_type"] == "kernel_info_reply"
                and parent.get("msg_id") == request_id
            ):
                return

    async def evaluate(self, expression: str, *, timeout: float) -> str:
        """The ``text/plain`` value of ``expression`` in the kernel, through a silent execute (no history, no count)."""
        deadline = time.monotonic() + timeout
        request_id = await self._send(
            "shell",
            "execute_request",
            {
                "code": "",
                "silent": True,
                "store_history": False,
                "user_expressions": {"value": expression},
                "allow_stdin": False,
            },
        )
        while True:
            channel, header, parent, content = await self._receive(deadline)
            if (
                channel == "shell"
                and header["msg_type"] == "execute_reply"
                and parent.get("msg_id") == request_id
            ):
                value = content.get("user_expressions", {}).get("value", {})
                if value.get("status") != "ok":
                    raise RuntimeError(f"{expression!r}: {value.get('ename')}: {value.get('evalue')}")
                return str(value["data"]["text/plain"])

    async def execute(self, code: str, *, timeout: float) -> CellResult:
        """Run one cell; wait for its ``execute_reply`` and for the kernel to be idle again."""
        deadline = time.monotonic() + timeout
        request_id = await self._send(
            "shell",
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        reply: dict[str, Any] | None = None
        idle = False
        while reply is None or not idle:
            try:
                channel, header, parent, content = await self._receive(deadline)
            except TimeoutError:
                return CellResult(False, "CellTimeout", f"no answer from the kernel within {timeout:.0f} s")
            except ConnectionError as error:
                return CellResult(False, "KernelDied", str(error))
            msg_type = header["msg_type"]
            if msg_type == "status" and content.get("execution_state") in _DEAD_STATES:
                return CellResult(
                    False, "KernelDied", f"the kernel's state became {content['execution_state']!r}"
                )
            if parent.get("msg_id") != request_id:
                continue
            if channel == "shell" and msg_type == "execute_reply":
                reply = content
            elif msg_type == "status" and content.get("execution_state") == "idle":
                idle = True
        if reply.get("status") == "ok":
            return CellResult(True)
        return CellResult(False, str(reply.get("ename", reply.get("status"))), str(reply.get("evalue", "")))
