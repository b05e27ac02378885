"""Attack tooling for the availability and fuzz tests: the reference plan, raw gRPC clients on
their own connections, a scripted member that can break its uploads, and the PS's memory.

Everything talks to real processes on loopback; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from homolr.learning import Dataset
from homolr.protocol import serde
from homolr.protocol.messages import GlobalModel, JoinRequest, ServerInfo, Update, UpdateHeader
from homolr.protocol.service import pb
from homolr.worker.local import LocalStep, make_local_step
from homolr.worker.loop import check_server_info, model_size_limit
from homolr.worker.transport import Connection
from tests.integration.harness import REFERENCE_FLAGS, Cluster, eval_lines, reference_files

#: Steps of the reference plan every attack test runs (a clean run takes ~17 s on 2 cores).
REFERENCE_ITERS = 200
SERVICE = "/homolr.v2.ParameterServer/"
GET_SERVER_INFO = SERVICE + "GetServerInfo"
JOIN = SERVICE + "Join"
GET_MODEL = SERVICE + "GetModel"
SUBMIT_UPDATE = SERVICE + "SubmitUpdate"


def reference_plan(test: Path, out: Path, iterations: int = REFERENCE_ITERS) -> list[str]:
    """``homolr ps`` arguments of the reference plan (encrypted mode, deterministic result)."""
    return [
        "--workers",
        "2",
        "--validate-set",
        str(test),
        "--iters",
        str(iterations),
        "--eval-every",
        "1",
        "--tolerance",
        "0",
        *REFERENCE_FLAGS,
        "--out",
        str(out),
    ]


def model_weights(path: Path) -> bytes:
    """The bias and coefficients of a ``model.json`` as little-endian float64 bytes (compared
    bit for bit)."""
    doc = json.loads(path.read_text())
    values = [float(doc["intercept"]), *(float(v) for v in doc["coef"])]
    return struct.pack(f"<{len(values)}d", *values)


@dataclass(frozen=True)
class RunResult:
    """What a finished run left: its weights (bit for bit) and evaluation lines."""

    weights: bytes
    lines: list[str]


def run_reference(
    cluster: Cluster, shared_data: Path, out: Path, iterations: int = REFERENCE_ITERS
) -> RunResult:
    """One PS and the two reference members, no attack; fails unless everybody exits 0."""
    guest, host, test = reference_files(shared_data)
    ps = cluster.start_ps(*reference_plan(test, out, iterations))
    workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
    assert ps.wait(300) == 0, ps.output()
    for worker in workers:
        assert worker.wait(60) == 0, worker.output()
    return RunResult(model_weights(out / "model.json"), eval_lines(ps.stdout()))


def steps_done(stdout: str) -> int:
    """Training steps the PS reported (the reference plan evaluates every step)."""
    return len(eval_lines(stdout))


def vm_rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (``VmRSS`` of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def channel_options(index: int) -> list[tuple[str, int | str]]:
    """Options that give a channel its own TCP connection (the PS allows 16 streams on one) and
    room for oversize messages."""
    return [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.primary_user_agent", f"attacker-{index}"),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]


def aio_channels(port: int, count: int) -> list[aio.Channel]:
    return [
        aio.insecure_channel(f"127.0.0.1:{port}", options=channel_options(i)) for i in range(count)
    ]


# ------------------------------------------------------------------------------ attack calls


@dataclass(frozen=True)
class CallOutcome:
    """How one attacker call ended, and when (seconds after it was opened)."""

    code: grpc.StatusCode
    details: str
    seconds: float


async def half_open_submit(
    channel: aio.Channel, first: pb.UpdateChunk | None, hold_s: float
) -> CallOutcome:
    """Open a SubmitUpdate stream, send ``first`` (or nothing) and then stay silent without
    closing the stream: only the server can end the call (``hold_s`` is the client's bound)."""
    started = time.monotonic()
    call = channel.stream_unary(
        SUBMIT_UPDATE,
        request_serializer=pb.UpdateChunk.SerializeToString,
        response_deserializer=pb.SubmitReply.FromString,
    )(None, timeout=hold_s)
    try:
        if first is not None:
            await call.write(first)
        await call
    except (aio.AioRpcError, asyncio.InvalidStateError):
        pass
    code = await call.code()
    details = await call.details()
    return CallOutcome(code, details or "", time.monotonic() - started)


async def poll_model(channel: aio.Channel, request: pb.ModelRequest, timeout: float) -> CallOutcome:
    """One GetModel long poll; returns how it ended and when."""
    started = time.monotonic()
    call = channel.unary_stream(
        GET_MODEL,
        request_serializer=pb.ModelRequest.SerializeToString,
        response_deserializer=pb.ModelChunk.FromString,
    )(request, timeout=timeout)
    try:
        async for _ in call:
            pass
    except aio.AioRpcError:
        pass
    code = await call.code()
    details = await call.details()
    return CallOutcome(code, details or "", time.monotonic() - started)


def server_info(port: int) -> ServerInfo:
    with Connection(f"127.0.0.1:{port}") as connection:
        return connection.server_info()


# ---------------------------------------------------------------------------- scripted member


class ScriptedMember:
    """A member that computes exactly what ``homolr worker`` computes, in this process, so that a
    test can break its uploads or stop before the end notice.

    Parameters
    ----------
    port : int
        The PS's port on 127.0.0.1.
    dataset : Dataset
        The member's training rows.
    worker_id : str
        The member id it joins as.
    """

    def __init__(self, port: int, dataset: Dataset, worker_id: str) -> None:
        self.target = f"127.0.0.1:{port}"
        self.connection = Connection(self.target, retry_budget_s=60.0)
        self.worker_id = worker_id
        self.info = self.connection.server_info()
        public_key = check_server_info(self.info, dataset)
        self.step: LocalStep = make_local_step(dataset, self.info.plan, public_key, worker_id)
        self.chunk_bytes = self.info.plan.chunk_ciphertexts * public_key.ciphertext_bytes
        self.limit = model_size_limit(self.info.plan, public_key)
        self.next_round = self.connection.join(
            JoinRequest(worker_id, self.info.run_id, dataset.n_features, dataset.n_samples)
        )

    def close(self) -> None:
        self.connection.close()

    def model(self, timeout_s: float = 120.0) -> GlobalModel:
        """The next round's model or the end notice (pending answers are polled again)."""
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            model = self.connection.model(
                self.worker_id,
                self.info.run_id,
                self.next_round,
                have_scaler=True,
                max_payload_bytes=self.limit,
            )
            if not model.header.pending:
                return model
        raise AssertionError(f"no model of round {self.next_round} within {timeout_s} s")

    def update(self, model: GlobalModel) -> Update:
        packed = self.step.update(model)
        header = UpdateHeader(
            worker_id=self.worker_id,
            run_id=self.info.run_id,
            round=model.header.round,
            length=packed.length,
            frac_bits=packed.frac_bits,
            value_bits=packed.spec.value_bits,
            headroom_bits=packed.spec.headroom_bits,
            n_ciphertexts=len(packed.ciphertexts),
        )
        return Update(header, packed.to_bytes())

    def submit(self, update: Update) -> int:
        """Upload ``update`` the way the worker does (with its retries); return the reply's
        ``received``."""
        received = self.connection.submit(update, self.chunk_bytes)
        self.next_round = update.header.round + 1
        return received

    def messages(self, update: Update) -> list[pb.UpdateChunk]:
        return list(serde.update_to_chunks(update, self.chunk_bytes))

    def broken_submit(self, update: Update, sent: int, settle_s: float = 1.0) -> grpc.StatusCode:
        """Send the first ``sent`` messages of ``update``'s stream, wait ``settle_s`` for the PS to
        take them in, then cancel the call as a broken connection would; return how it ended."""
        messages = self.messages(update)[:sent]
        release = threading.Event()
        with grpc.insecure_channel(self.target, options=channel_options(0)) as channel:
            submit = channel.stream_unary(
                SUBMIT_UPDATE,
                request_serializer=pb.UpdateChunk.SerializeToString,
                response_deserializer=pb.SubmitReply.FromString,
            )

            def stream() -> Iterator[pb.UpdateChunk]:
                yield from messages
                release.wait(30.0)  # never half-close: the stream breaks instead

            future = submit.future(stream(), timeout=60.0)
            time.sleep(settle_s)
            future.cancel()  # type: ignore[no-untyped-call]
            release.set()
            try:
                future.result(timeout=10.0)
            except grpc.FutureCancelledError:
                return grpc.StatusCode.CANCELLED
            except grpc.RpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

    def run(self, rounds: int) -> None:
        """Take part in ``rounds`` rounds like ``homolr worker``; stop without fetching what
        follows the last one (the end notice, when it was the plan's last round)."""
        for _ in range(rounds):
            model = self.model()
            if model.header.finished:
                raise AssertionError(f"the run ended early: {model.header.reason}")
            self.submit(self.update(model))


def wait_for_line(read: Callable[[], str], needle: str, timeout: float) -> None:
    """Poll a process log every 10 ms until it holds ``needle``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in read():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {needle!r}:\n{read()}")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


__all__ = [
    "GET_MODEL",
    "GET_SERVER_INFO",
    "JOIN",
    "REFERENCE_ITERS",
    "SUBMIT_UPDATE",
    "CallOutcome",
    "RunResult",
    "ScriptedMember",
    "aio_channels",
    "channel_options",
    "half_open_submit",
    "model_weights",
    "percentile",
    "poll_model",
    "reference_plan",
    "run_reference",
    "server_info",
    "steps_done",
    "vm_rss_kib",
    "wait_for_line",
]
