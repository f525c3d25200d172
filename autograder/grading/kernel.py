"""The sandboxed kernel manager and the grading notebook client, and starting and shutting
down a kernel with them (used by execute.py only).

Decisions:

* nbclient drives the cells (``allow_errors=True``); two hooks are overridden: the
  timeout handler (interrupt by message, wait a grace period for the reply, else kill —
  stock nbclient would interrupt again and again) and ``output`` (a byte cap per cell,
  applied as messages arrive, so output never piles up in the grader).
* The zmq context of the client refuses any message over ``output_bytes + 1 MiB``
  (``ZMQ_MAXMSGSIZE``) and queues at most a few dozen: a 100 MB line is dropped by
  libzmq before Python sees it; a socket monitor (:class:`DropMonitor`) tells us so, for
  the student's note.
* Every wait for a shell reply (the interrupt's, the grader's own requests) goes through
  :func:`wait_for_reply`: poll at most a second at a time, and notice a dead kernel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from autograder.grading import messages
from autograder.grading.outcome import MESSAGE_CHARS
from autograder.grading.sandbox_users import SandboxUser

INTERRUPT_GRACE_S = 8.0
"""How long a kernel has to answer after an interrupt before the cgroup is killed."""
KERNEL_LOG_ENV = "COURSE_KERNEL_LOG"
"""Operators only: a file to append the kernels' raw stdout/stderr to (default: dropped)."""


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose command runs inside the sandbox argv (or plain, when not)."""

    def configure(self, *, wrap: Any, owner: SandboxUser | None,
                  max_message_bytes: int) -> None:
        self._wrap = wrap
        self._owner = owner
        self._max_message_bytes = max_message_bytes
        self._kernel_spec = KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (sandboxed)", language="python",
            interrupt_mode="message", env={}, metadata={},
        )

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return self._wrap(super().format_kernel_cmd(extra_arguments=extra_arguments))

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        if self._owner is not None:  # the kernel reads it as the slot uid
            os.chown(self.connection_file, self._owner.uid, self._owner.gid)

    def client(self, **kwargs: Any) -> Any:
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self._max_message_bytes)
        context.setsockopt(zmq.RCVHWM, 32)
        context.setsockopt(zmq.LINGER, 0)
        return super().client(context=context, **kwargs)


class InterruptIgnored(Exception):
    """The kernel did not answer an interrupt within the grace period."""


async def wait_for_reply(kc: Any, km: Any, wanted: Callable[[dict], bool], *,
                         timeout_s: float) -> dict | None:
    """The first shell message ``wanted`` accepts within ``timeout_s``, or None; raises
    :class:`DeadKernelError` when the kernel dies while we wait."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await kc.shell_channel.get_msg(timeout=min(left, 1.0))
        except Empty:
            if not await km.is_alive():
                raise DeadKernelError("Kernel died") from None
            continue
        if wanted(msg):
            return msg
    return None


class GradingNotebookClient(NotebookClient):
    """nbclient with a byte cap on outputs and interrupt-then-kill on timeout."""

    def configure(self, *, output_bytes: int) -> None:
        self._output_bytes = output_bytes
        self._cell_bytes = 0
        self._cut = False
        self.timed_out = False

    def begin_cell(self) -> None:
        self._cell_bytes = 0
        self._cut = False
        self.timed_out = False
        self.last_error: str | None = None
        self.on_cell_executed = self._record_reply

    def _record_reply(self, *, cell: Any, cell_index: int, execute_reply: dict) -> None:
        """The error comes from the reply, not the outputs (which may have been cut)."""
        content = (execute_reply or {}).get("content", {})
        if content.get("status") == "error":
            ename = str(content.get("ename", "Error"))[:100]
            evalue = str(content.get("evalue", ""))[:MESSAGE_CHARS]
            self.last_error = f"{ename}: {evalue}" if evalue else ename

    @property
    def output_cut(self) -> bool:
        return self._cut

    def output(self, outs: list, msg: dict[str, Any], display_id: str | None,
               cell_index: int) -> Any:
        content = msg.get("content", {})
        size = content_bytes(msg.get("msg_type", ""), content)
        room = self._output_bytes - self._cell_bytes
        if size <= room:
            self._cell_bytes += size
            return super().output(outs, msg, display_id, cell_index)
        if not self._cut:
            self._cut = True
            self._cell_bytes = self._output_bytes
            if msg.get("msg_type") == "stream" and room > 0:
                text = content.get("text", "")
                kept = text.encode("utf-8")[:room].decode("utf-8", "ignore")
                msg = {**msg, "content": {**content, "text": kept}}
                super().output(outs, msg, display_id, cell_index)
            outs.append(nbformat.v4.new_output(
                "stream", name="stderr",
                text="\n" + messages.OUTPUT_CUT.format(cell=cell_index,
                                                       limit=self._output_bytes) + "\n"))
        return None

    async def _async_handle_timeout(self, timeout: int, cell: Any = None) -> dict | None:
        self.timed_out = True
        assert self.km is not None and self.kc is not None
        await self.km.interrupt_kernel()
        msg = await wait_for_reply(self.kc, self.km,
                                   lambda m: m.get("msg_type") == "execute_reply",
                                   timeout_s=INTERRUPT_GRACE_S)
        if msg is None:
            raise InterruptIgnored()
        return msg

    def death_reason(self) -> str:
        """Exit code or signal of the kernel, as bubblewrap passed it on."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        code = process.poll() if process is not None else None
        if code is None:
            return messages.DIED_HOW_UNKNOWN
        if code < 0:
            code = 128 - code
        if code > 128:
            try:
                name = signal.Signals(code - 128).name
            except ValueError:
                name = str(code - 128)
            return messages.DIED_HOW_SIGNAL.format(signal=name)
        return messages.DIED_HOW_EXIT.format(code=code)


def content_bytes(msg_type: str, content: dict[str, Any]) -> int:
    """What one output message counts against the cell's byte cap."""
    if msg_type == "stream":
        return len(str(content.get("text", "")).encode("utf-8", "ignore"))
    if msg_type == "error":
        return sum(len(str(line)) for line in content.get("traceback", [])) + 100
    data = content.get("data", {})
    if isinstance(data, dict):
        return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values())
    return 100


async def grader_request(client: GradingNotebookClient, code: str, *, timeout_s: float,
                         user_expressions: dict[str, str] | None = None) -> dict | None:
    """Run grader code silently and return its reply, or None if it did not come."""
    assert client.kc is not None
    msg_id = client.kc.execute(code, silent=True, store_history=False,
                               user_expressions=user_expressions or {})
    try:
        return await wait_for_reply(
            client.kc, client.km,
            lambda m: m.get("parent_header", {}).get("msg_id") == msg_id, timeout_s=timeout_s)
    except DeadKernelError:
        return None


class DropMonitor:
    """Counts disconnects of the iopub socket: libzmq drops a peer that sends an
    oversized message, which is how a 100 MB line shows up on our side."""

    def __init__(self, kc: Any) -> None:
        self._addr = f"inproc://iopub-monitor-{uuid.uuid4().hex}"
        self._watched = kc.iopub_channel.socket
        self._socket: zmq.Socket | None = None
        try:
            self._watched.monitor(self._addr, zmq.EVENT_DISCONNECTED)
            self._sync = zmq.Context.shadow(kc.context.underlying)
            self._socket = self._sync.socket(zmq.PAIR)
            self._socket.connect(self._addr)
        except (zmq.ZMQError, AttributeError):
            self._socket = None

    def dropped(self) -> int:
        count = 0
        while self._socket is not None and self._socket.poll(0):
            self._socket.recv_multipart()
            count += 1
        return count

    def close(self) -> None:
        if self._socket is not None:
            try:
                self._watched.disable_monitor()
            except zmq.ZMQError:
                pass
            self._socket.close(linger=0)
            self._socket = None


async def start_kernel(km: SandboxedKernelManager, *, env: dict[str, str],
                       cwd: Path) -> Any:
    """Start the kernel; its process (the outer one of the sandbox argv), if any.

    Kernel fds 1/2 are not the student's output (that travels over iopub): they go to
    /dev/null, or, for an operator debugging, appended to the file named by
    ``$COURSE_KERNEL_LOG``, capped by the sandbox's RLIMIT_FSIZE."""
    log_path = os.environ.get(KERNEL_LOG_ENV)
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed below
    try:
        await km.start_kernel(env=env, stdin=subprocess.DEVNULL, stdout=log or subprocess.DEVNULL,
                              stderr=log or subprocess.DEVNULL, cwd=str(cwd))
    finally:
        if log is not None:
            log.close()
    return getattr(km.provisioner, "process", None)


async def shutdown_kernel(km: SandboxedKernelManager, client: GradingNotebookClient,
                          process: Any) -> None:
    """Shut the kernel down, close the client's sockets and context, reap the process."""
    try:
        await km.shutdown_kernel(now=True)
    except Exception:
        pass
    if client.kc is not None:
        context = client.kc.context
        client.kc.stop_channels()
        context.destroy(linger=0)  # ours (see SandboxedKernelManager.client)
    await km.cleanup_resources()
    if process is not None:  # reap the outer process (a zombie otherwise)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
