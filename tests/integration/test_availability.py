"""No party can stall a run: attacks on the PS's availability, with real processes on loopback.

Each test runs the reference plan (encrypted mode, deterministic) under one attack and compares the
legitimate run's final model with the clean run's bit for bit, besides exit statuses and timings.
The measurements are printed (``pytest -s`` shows them) so that a regression shows up as a number.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from homolr.errors import ExitCode, RoundError
from homolr.learning import load_csv
from homolr.protocol import serde
from homolr.protocol.messages import UpdateHeader
from homolr.protocol.service import pb
from homolr.server.servicer import ServerLimits
from tests.integration.attack import (
    SUBMIT_UPDATE,
    CallOutcome,
    RunResult,
    ScriptedMember,
    aio_channels,
    channel_options,
    half_open_submit,
    model_weights,
    percentile,
    poll_model,
    reference_plan,
    server_info,
    steps_done,
    vm_rss_kib,
    wait_for_line,
)
from tests.integration.harness import (
    Cluster,
    Proc,
    member_identities,
    reference_files,
    wait_for,
    write_federation,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIMITS = ServerLimits()
#: How a stream closed for waiting longest for its header ends, seen from an aio client.
EVICTED = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL}
#: Streams are spread over this many connections (the PS allows 16 concurrent streams on one).
CONNECTIONS = 25


def _start_reference(cluster: Cluster, shared_data: Path, out: Path) -> tuple[Proc, list[Proc]]:
    guest, host, test = reference_files(shared_data)
    ps = cluster.start_ps(*reference_plan(test, out))
    workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
    return ps, workers


def _finish_like_the_clean_run(
    ps: Proc, workers: list[Proc], out: Path, clean: RunResult, timeout: float = 300.0
) -> None:
    assert ps.wait(timeout) == 0, ps.output()
    for worker in workers:
        assert worker.wait(60) == 0, worker.output()
    assert model_weights(out / "model.json") == clean.weights, "the final model differs"
    assert "Traceback" not in ps.output()


def _report(name: str, outcomes: list[CallOutcome]) -> str:
    seconds = [o.seconds for o in outcomes]
    return (
        f"{name}: {len(outcomes)} calls, closed after min {min(seconds):.3f} s, "
        f"median {percentile(seconds, 0.5):.3f} s, max {max(seconds):.3f} s"
    )


# ------------------------------------------------------------------------------------ (a)


def test_half_open_update_streams_of_a_non_member_are_closed_and_do_not_stall_the_run(
    cluster: Cluster, shared_data: Path, tmp_path: Path, clean_run: RunResult
) -> None:
    out = tmp_path / "out"
    ps, workers = _start_reference(cluster, shared_data, out)
    wait_for(lambda: steps_done(ps.stdout()) >= 2, 120, "two training steps")
    run_id = server_info(cluster.port).run_id
    round_ = steps_done(ps.stdout())
    # Two kinds of caller without a valid id: one that never joined, one whose id is malformed.
    headers = [
        pb.UpdateChunk(
            header=serde.update_header_to_proto(
                UpdateHeader("mallory", run_id, round_, 31, 48, 64, 10, 2), 2 * 512
            )
        ),
        pb.UpdateChunk(header=pb.UpdateHeader(worker_id="no id/..", run_id=run_id, round=round_)),
    ]
    hold_s = 60.0  # the client never gives up first: only the PS can end these calls

    async def attack() -> tuple[list[CallOutcome], list[CallOutcome], int]:
        channels = aio_channels(cluster.port, CONNECTIONS)
        try:
            header_only = await asyncio.gather(
                *(
                    half_open_submit(channels[i % CONNECTIONS], headers[i % 2], hold_s)
                    for i in range(200)
                )
            )
            step = steps_done(ps.stdout())
            silent = await asyncio.gather(
                *(half_open_submit(channels[i % CONNECTIONS], None, hold_s) for i in range(200))
            )
            return header_only, silent, step
        finally:
            for channel in channels:
                await channel.close(None)

    header_only, silent, step_at_silence = asyncio.run(attack())
    step_after = steps_done(ps.stdout())
    print(_report("header only, no valid id", header_only))
    print(_report("no header at all", silent))
    print(f"training steps while the silent streams were held: {step_after - step_at_silence}")
    # A header naming no member is refused the moment it is read. 200 streams opened at once are
    # more than the PS lets wait for their header (64): those it has not read yet when newer
    # ones arrive are closed (RESOURCE_EXHAUSTED; the attacker's aio client, still writing,
    # may read that as INTERNAL 'Internal error from Core').
    refused = 0
    for outcome, sent in zip(header_only, itertools.cycle(headers), strict=False):
        if outcome.code in EVICTED:
            continue
        refused += 1
        if sent.header.worker_id == "mallory":
            assert outcome.code == grpc.StatusCode.FAILED_PRECONDITION, outcome
            assert "has not joined" in outcome.details
        else:
            assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome
            assert "is not 1-64 characters" in outcome.details
    print(f"header only: {refused} refused at the header, {200 - refused} closed before it")
    assert refused >= LIMITS.max_awaiting_header
    assert max(o.seconds for o in header_only) < 2.0
    # Streams that never send their header: the PS keeps the newest max_awaiting_header of them
    # until the first-message limit and closes the older ones as the newer arrive.
    assert ps.popen.poll() is None, "the run ended before the silent streams' limit"
    evicted = [o for o in silent if o.code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    held = [o for o in silent if o.code == grpc.StatusCode.DEADLINE_EXCEEDED]
    print(_report("silent, closed as newer ones came", evicted))
    print(_report("silent, closed at the first-message limit", held))
    assert len(evicted) + len(held) == len(silent), {o.code for o in silent}
    # The newest 64 are held, less one for each members' upload that came meanwhile.
    assert LIMITS.max_awaiting_header - 2 * 5 <= len(held) <= LIMITS.max_awaiting_header
    assert all("waited longest and was closed" in o.details for o in evicted), evicted[0]
    assert max(o.seconds for o in evicted) < 2.0
    assert all("waiting for the update header" in o.details for o in held), held[0]
    first_message_s = LIMITS.first_message_s
    assert min(o.seconds for o in held) >= first_message_s - 0.5
    assert max(o.seconds for o in held) <= first_message_s + 3.0
    # Training went on while they were held, and ended exactly as without the attack.
    assert step_after - step_at_silence >= 5, "training stalled while the streams were held"
    _finish_like_the_clean_run(ps, workers, out, clean_run)


def test_streams_that_never_send_a_header_cannot_take_every_call_slot(
    cluster: Cluster, shared_data: Path, tmp_path: Path, clean_run: RunResult
) -> None:
    """More silent streams than the PS serves calls at once (gRPC answers RESOURCE_EXHAUSTED
    beyond 256 + 4 per member), each opened again as soon as it ends: the members' calls must
    still get through."""
    out = tmp_path / "out"
    ps, workers = _start_reference(cluster, shared_data, out)
    wait_for(lambda: steps_done(ps.stdout()) >= 3, 120, "three training steps")
    flood_s, slots = 12.0, 300

    async def flood() -> Counter[str]:
        channels = aio_channels(cluster.port, CONNECTIONS)
        codes: Counter[str] = Counter()
        end = time.monotonic() + flood_s

        async def hold_a_slot(i: int) -> None:
            while time.monotonic() < end:
                outcome = await half_open_submit(channels[i % CONNECTIONS], None, 30.0)
                codes[outcome.code.name] += 1
                await asyncio.sleep(0.01)

        try:
            await asyncio.gather(*(hold_a_slot(i) for i in range(slots)))
        finally:
            for channel in channels:
                await channel.close(None)
        return codes

    before = steps_done(ps.stdout())
    codes = asyncio.run(flood())
    during = steps_done(ps.stdout()) - before
    print(f"{slots} silent streams for {flood_s:g} s: {dict(codes)}; {during} training steps")
    assert during >= 10, f"training stalled: {during} steps in {flood_s:g} s of flood"
    _finish_like_the_clean_run(ps, workers, out, clean_run)


# ------------------------------------------------------------------------------------ (b)


def test_long_poll_flood_under_a_members_id_is_refused_at_once(
    cluster: Cluster, shared_data: Path, tmp_path: Path, clean_run: RunResult
) -> None:
    out = tmp_path / "out"
    ps, workers = _start_reference(cluster, shared_data, out)
    host = workers[1]
    wait_for(lambda: steps_done(ps.stdout()) >= 3, 120, "three training steps")
    run_id = server_info(cluster.port).run_id
    # Hold the round open (host frozen) so that a poll for the next round must wait: 'guest' has
    # answered the open round and long-polls the next one.
    host.kill(signal.SIGSTOP)
    try:
        time.sleep(1.0)
        next_round = steps_done(ps.stdout()) + 1
        # --insecure proves no identity: the attacker claims the joined member 'guest'.
        request = pb.ModelRequest(
            worker_id="guest", run_id=run_id, round=next_round, have_scaler=True
        )

        async def attack() -> list[CallOutcome]:
            channels = aio_channels(cluster.port, CONNECTIONS)
            try:
                return await asyncio.gather(
                    *(poll_model(channels[i % CONNECTIONS], request, 30.0) for i in range(200))
                )
            finally:
                for channel in channels:
                    await channel.close(None)

        outcomes = asyncio.run(attack())
    finally:
        host.kill(signal.SIGCONT)
    refused = [o for o in outcomes if o.code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    served = [o for o in outcomes if o.code != grpc.StatusCode.RESOURCE_EXHAUSTED]
    print(_report("extra polls refused", refused))
    print(f"polls served: {[(o.code.name, round(o.seconds, 3)) for o in served]}")
    # One GetModel per member: at most one of the 200 (when the member's own poll was not in
    # flight) holds the slot, for at most the poll cap; every other one is refused at once.
    assert len(refused) >= 199
    assert all("already has a GetModel call in flight" in o.details for o in refused)
    assert max(o.seconds for o in refused) < 2.0
    assert all(o.code == grpc.StatusCode.OK for o in served)
    assert all(o.seconds <= LIMITS.poll_cap_s + 3.0 for o in served)
    _finish_like_the_clean_run(ps, workers, out, clean_run)


# ------------------------------------------------------------------------------------ (c)


def test_ps_frozen_by_sigstop_for_45_s_resumes_and_every_round_completes(
    cluster: Cluster, shared_data: Path, tmp_path: Path, clean_run: RunResult
) -> None:
    out = tmp_path / "out"
    guest, host, test = reference_files(shared_data)
    # Round deadlines shorter than the freeze: counted in wall-clock time they would all have
    # passed on waking, and the run would pause (participation 'all'). Deadlines do not change
    # the model.
    deadlines = ("--round-timeout", "20", "--first-round-timeout", "20")
    ps = cluster.start_ps(*reference_plan(test, out), *deadlines)
    workers = [cluster.start_worker("guest", guest), cluster.start_worker("host", host)]
    wait_for(lambda: steps_done(ps.stdout()) >= 10, 120, "ten training steps")
    ps.kill(signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        time.sleep(45.0)
    finally:
        ps.kill(signal.SIGCONT)
    woke = time.monotonic()
    _finish_like_the_clean_run(ps, workers, out, clean_run, timeout=240.0)
    print(f"frozen {woke - frozen_at:.1f} s; the run ended {time.monotonic() - woke:.1f} s later")
    log = ps.output()
    assert "missed round" not in log and "paused" not in log, log
    assert steps_done(ps.stdout()) == len(clean_run.lines)
    assert ps.stdout().splitlines()[-5:] == clean_run.lines[-5:]
    # The members noticed the frozen PS and rode it out within their retry budget.
    retried = [w for w in workers if "not answering" in w.output()]
    assert retried, "no worker waited for the frozen PS"
    for worker in retried:
        waits = [line for line in worker.output().splitlines() if "not answering" in line]
        print(f"{worker.name}: {len(waits)} waits, last: {waits[-1]}")


# ------------------------------------------------------------------------------------ (d)


def test_member_with_a_bad_csv_exits_3_and_the_ps_names_it_then_times_out_without_a_model(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    guest, host, test = reference_files(shared_data)
    lines = host.read_text().splitlines(keepends=True)
    fields = lines[6].split(",")
    fields[5] = "not-a-number"  # column x3 of the file's line 7
    bad = tmp_path / "host-broken.csv"
    bad.write_text("".join([*lines[:6], ",".join(fields), *lines[7:]]))
    identities = member_identities(tmp_path / "ids", ["guest", "host"])
    federation = write_federation(
        tmp_path / "federation.toml", {m: cert for m, (cert, _) in identities.items()}
    )
    out = tmp_path / "out"
    join_timeout_s = 12.0  # past the PS's 10 s progress message
    ps = cluster.start_ps(
        "--federation",
        str(federation),
        "--validate-set",
        str(test),
        "--join-timeout",
        str(join_timeout_s),
        "--out",
        str(out),
    )
    started = time.monotonic()
    good = cluster.start_worker("guest", guest)
    broken = cluster.start_worker("host", bad)
    assert broken.wait(60) == ExitCode.CONFIG, broken.output()
    message = broken.output()
    assert "Traceback" not in message
    assert f"{bad}:7" in message and "x3" in message, message
    assert ps.wait(join_timeout_s + 30) == ExitCode.JOIN_TIMEOUT, ps.output()
    elapsed = time.monotonic() - started
    log = ps.output()
    assert "waiting for members: 1 of 2 joined (guest); missing: host" in log, log
    assert f"only 1 of 2 members joined within {join_timeout_s:g} s (guest); missing: host" in log
    assert not (out / "model.json").exists()
    assert elapsed < join_timeout_s + 10.0
    assert good.wait(30) == ExitCode.PAUSED, good.output()  # told the run ended unfinished
    print(
        f"PS exited {ExitCode.JOIN_TIMEOUT} after {elapsed:.1f} s (join timeout {join_timeout_s})"
    )


# ------------------------------------------------------------------------------------ (e)

PHASES = ("starting", "waiting for members", "mid-round", "end notice")
SIGNALS = {signal.SIGINT: ExitCode.SIGINT, signal.SIGTERM: ExitCode.SIGTERM}


@contextlib.contextmanager
def _phase(
    phase: str, cluster: Cluster, shared_data: Path, tmp_path: Path
) -> Iterator[tuple[Proc, list[Proc]]]:
    """A PS in ``phase`` (and the members it has then); members are stopped afterwards."""
    guest, host, test = reference_files(shared_data)
    out = tmp_path / "out"
    if phase == "starting":
        # 4096-bit key generation (~0.3 s) comes right after the security warnings and before
        # the development-mode banner; the banner's absence proves where the signal landed.
        ps = cluster.start(
            "ps", "ps", "--port", "0", "--attestation", "none", "--insecure",
            "--key-bits", "4096", "--validate-set", str(test), "--out", str(out),
        )  # fmt: skip
        wait_for_line(ps.output, "WARNING: --attestation none", 60)
        yield ps, []
        assert "DEVELOPMENT MODE" not in ps.output(), "the signal came after key generation"
        return
    if phase == "waiting for members":
        ps = cluster.start_ps(*reference_plan(test, out))
        wait_for_line(ps.output, "waiting for members", 30)
        yield ps, []
        return
    if phase == "mid-round":
        ps, workers = _start_reference(cluster, shared_data, out)
        wait_for(lambda: steps_done(ps.stdout()) >= 3, 120, "three training steps")
        yield ps, workers
        return
    # end notice: a member that does its 3 rounds but never collects the end notice keeps the PS
    # in its notice phase (up to 10 s).
    ps = cluster.start_ps(*reference_plan(test, out, iterations=3))
    worker = cluster.start_worker("guest", guest)
    member = ScriptedMember(cluster.port, load_csv(host), "host")
    try:
        member.run(3)
        wait_for_line(ps.output, "training completed", 60)
        assert worker.wait(30) == 0, worker.output()
        yield ps, []
    finally:
        member.close()


def _stopped_in_time(ps: Proc, signum: int, sent_at: float, within_s: float) -> float:
    code = ps.wait(30)
    took = time.monotonic() - sent_at
    assert code == SIGNALS[signal.Signals(signum)], f"exit {code}:\n{ps.output()}"
    assert took <= within_s, f"exited {took:.1f} s after the signal:\n{ps.output()}"
    assert "Traceback" not in ps.output(), ps.output()
    return took


@pytest.mark.parametrize("signum", list(SIGNALS), ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize(
    "phase",
    [
        "starting",
        "waiting for members",
        "mid-round",
        "end notice",
    ],
)
def test_signal_stops_the_ps_within_3_s_in_every_phase(
    cluster: Cluster, shared_data: Path, tmp_path: Path, phase: str, signum: int
) -> None:
    with _phase(phase, cluster, shared_data, tmp_path) as (ps, workers):
        sent_at = time.monotonic()
        ps.kill(signum)
        took = _stopped_in_time(ps, signum, sent_at, 3.0)
    print(f"{phase}: {signal.Signals(signum).name} -> exit after {took:.2f} s")
    if "no model is written" in ps.output():
        assert not (tmp_path / "out" / "model.json").exists(), "the PS said no model is written"
    for worker in workers:  # told that the run was stopped
        assert worker.wait(60) == ExitCode.PAUSED, worker.output()


@pytest.mark.parametrize(
    ("phase", "signum"), [("mid-round", signal.SIGINT), ("end notice", signal.SIGTERM)]
)
def test_second_signal_exits_at_once(
    cluster: Cluster, shared_data: Path, tmp_path: Path, phase: str, signum: int
) -> None:
    with _phase(phase, cluster, shared_data, tmp_path) as (ps, _):
        ps.kill(signum)
        time.sleep(0.1)
        sent_at = time.monotonic()
        ps.kill(signum)
        took = _stopped_in_time(ps, signum, sent_at, 0.5)
    assert "second signal" in ps.output()
    print(f"{phase}: second {signal.Signals(signum).name} -> exit after {took:.3f} s")


@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, signal.SIGTERM],
    ids=["SIGINT", "SIGTERM"],
)
def test_second_signal_during_the_shutdown_grace_exits_with_the_signals_status(
    cluster: Cluster, shared_data: Path, tmp_path: Path, signum: int
) -> None:
    test = reference_files(shared_data)[2]
    ps = cluster.start_ps(*reference_plan(test, tmp_path / "out"))
    # A stream that never sends its header keeps server.stop() in its 1 s grace period.
    release = threading.Event()

    def silence() -> Iterator[pb.UpdateChunk]:
        release.wait(30.0)
        yield from ()

    with grpc.insecure_channel(f"127.0.0.1:{cluster.port}") as channel:
        submit = channel.stream_unary(
            SUBMIT_UPDATE,
            request_serializer=pb.UpdateChunk.SerializeToString,
            response_deserializer=pb.SubmitReply.FromString,
        )
        pending = submit.future(silence(), timeout=30.0)
        try:
            time.sleep(0.5)
            ps.kill(signum)
            wait_for_line(ps.output, "training stopped", 10)
            time.sleep(0.3)
            sent_at = time.monotonic()
            ps.kill(signum)
            took = _stopped_in_time(ps, signum, sent_at, 0.5)
        finally:
            release.set()
            pending.cancel()  # type: ignore[no-untyped-call]
    print(f"second {signal.Signals(signum).name} in the grace period -> exit after {took:.3f} s")


# ------------------------------------------------------------------------------------ (f)


@contextlib.contextmanager
def _occupied_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _ps_on_port(cluster: Cluster, test: Path, port: int) -> tuple[int, str]:
    ps = cluster.start(
        "ps", "ps", "--port", str(port), "--attestation", "none", "--insecure",
        "--validate-set", str(test), "--out", str(cluster.tmp / "out"),
    )  # fmt: skip
    return ps.wait(60), ps.output()


DEV_WARNINGS = ("homolr ps: WARNING: --insecure", "homolr ps: WARNING: --attestation none")


def test_port_in_use_is_one_error_line_without_traceback_and_exit_3(
    cluster: Cluster, shared_data: Path
) -> None:
    with _occupied_port() as port:
        code, log = _ps_on_port(cluster, reference_files(shared_data)[2], port)
    assert code == ExitCode.CONFIG, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if line.startswith("homolr ps: error:")]
    assert len(errors) == 1, log
    assert errors[0].startswith(f"homolr ps: error: cannot listen on 127.0.0.1:{port}: "), log
    assert "choose another with --port, or --port 0 for any free port" in errors[0], log


def test_port_in_use_prints_nothing_but_homolrs_error_line(
    cluster: Cluster, shared_data: Path
) -> None:
    with _occupied_port() as port:
        code, log = _ps_on_port(cluster, reference_files(shared_data)[2], port)
    assert code == ExitCode.CONFIG
    other = [
        line
        for line in log.splitlines()
        if not line.startswith(DEV_WARNINGS)
        and "DEVELOPMENT MODE" not in line
        and not line.startswith("homolr ps: error: cannot listen on")
    ]
    assert other == [], log


# ------------------------------------------------------------------------------------ (g)


def test_member_whose_upload_breaks_midway_resubmits_and_the_round_completes(
    cluster: Cluster, shared_data: Path, tmp_path: Path, clean_run: RunResult
) -> None:
    """Both members are scripted in lockstep, so that the test decides whether the round is still
    open when the broken upload is sent again. The reference data packs an update into two
    ciphertexts, one data message: "after some data messages" is after all of them."""
    guest_csv, host_csv, test = reference_files(shared_data)
    out = tmp_path / "out"
    ps = cluster.start_ps(*reference_plan(test, out))
    guest = ScriptedMember(cluster.port, load_csv(guest_csv), "guest")
    host = ScriptedMember(cluster.port, load_csv(host_csv), "host")
    seen: dict[int, tuple[grpc.StatusCode, str]] = {}
    try:
        for _ in range(len(clean_run.lines)):
            g_model, h_model = guest.model(), host.model()
            r = h_model.header.round
            g_update, h_update = guest.update(g_model), host.update(h_model)
            if r == 3:  # every message sent, never half-closed; the round stays open
                broken = host.broken_submit(h_update, len(host.messages(h_update)))
                seen[r] = (broken, f"resubmitted: received {host.submit(h_update)}")
                guest.submit(g_update)
            elif r == 6:  # the header only
                broken = host.broken_submit(h_update, 1)
                seen[r] = (broken, f"resubmitted: received {host.submit(h_update)}")
                guest.submit(g_update)
            elif r == 9:  # the broken upload completes the round: its resubmission is late
                guest.submit(g_update)
                broken = host.broken_submit(h_update, len(host.messages(h_update)))
                try:
                    host.submit(h_update)
                    seen[r] = (broken, "resubmitted: accepted")
                except RoundError as exc:  # what homolr worker logs, and goes on
                    seen[r] = (broken, f"resubmission refused: {exc}")
                    host.next_round = r + 1
            else:
                guest.submit(g_update)
                host.submit(h_update)
        ends = guest.model(), host.model()
    finally:
        guest.close()
        host.close()
    print(f"broken uploads: {seen}")
    assert {r: code for r, (code, _) in seen.items()} == dict.fromkeys(
        (3, 6, 9), grpc.StatusCode.CANCELLED
    )
    # Sent again while the round is open, the update is taken (once) and acknowledged...
    assert seen[3][1] == "resubmitted: received 1" and seen[6][1] == "resubmitted: received 1"
    # ...and once its data completed the round, the resubmission is refused as late.
    assert "submitted for round 9 (late)" in seen[9][1]
    assert all(end.header.finished and end.header.outcome == "completed" for end in ends)
    assert ps.wait(60) == 0, ps.output()
    assert model_weights(out / "model.json") == clean_run.weights, "the final model differs"
    assert "Traceback" not in ps.output()


# ------------------------------------------------------------------------------------ (h)


def _refused_headers(run_id: str, count: int) -> Iterator[pb.UpdateChunk]:
    """Update headers the PS refuses on sight: unknown member, wrong run, malformed id, a
    joined member while no round is open."""
    kinds = (
        UpdateHeader("nobody", run_id, 0, 31, 48, 64, 10, 2),
        UpdateHeader("mallory", "f" * 32, 0, 31, 48, 64, 10, 2),
        UpdateHeader("mallory", run_id, 0, 31, 48, 64, 10, 2),
    )
    for i in range(count):
        if i % 4 == 3:
            header = pb.UpdateHeader(worker_id="bad id/..", run_id=run_id, payload_bytes=1024)
        else:
            header = serde.update_header_to_proto(kinds[i % 4], 1024)
        yield pb.UpdateChunk(header=header)


def test_rejected_calls_leave_the_ps_memory_flat(
    cluster: Cluster, shared_data: Path, tmp_path: Path
) -> None:
    test = reference_files(shared_data)[2]
    ps = cluster.start_ps(*reference_plan(test, tmp_path / "out"), "--join-timeout", "300")
    info = server_info(cluster.port)
    with grpc.insecure_channel(f"127.0.0.1:{cluster.port}", options=channel_options(0)) as ch:
        join = ch.unary_unary(
            "/homolr.v2.ParameterServer/Join",
            request_serializer=pb.JoinRequest.SerializeToString,
            response_deserializer=pb.JoinReply.FromString,
        )
        join(
            pb.JoinRequest(
                worker_id="mallory",
                run_id=info.run_id,
                n_features=30,
                n_samples=100,
                protocol_version=info.protocol_version,
            ),
            timeout=10,
        )
        submit = ch.stream_unary(
            "/homolr.v2.ParameterServer/SubmitUpdate",
            request_serializer=pb.UpdateChunk.SerializeToString,
            response_deserializer=pb.SubmitReply.FromString,
        )

        def refuse(count: int) -> dict[str, int]:
            codes: dict[str, int] = {}
            for message in _refused_headers(info.run_id, count):
                try:
                    submit(iter([message]), timeout=10)
                    name = "OK"
                except grpc.RpcError as exc:
                    name = exc.code().name
                codes[name] = codes.get(name, 0) + 1
            return codes

        refuse(400)  # warm-up: gRPC's and the allocator's pools reach their working size
        time.sleep(0.5)
        before = vm_rss_kib(ps.popen.pid)
        first = refuse(1500)
        middle = vm_rss_kib(ps.popen.pid)
        second = refuse(1500)
        time.sleep(0.5)
        after = vm_rss_kib(ps.popen.pid)
    print(
        f"VmRSS before {before} KiB, after 1,500 {middle} KiB, after 3,000 {after} KiB: "
        f"{(after - before) * 1024 / 3000:.0f} bytes per refused call; codes {first} {second}"
    )
    assert set(first) == set(second) == {"FAILED_PRECONDITION", "INVALID_ARGUMENT", "ABORTED"}
    # 3,000 x 9 KB (the leak this guards against) would be 27 MB; allocator noise stays under 1 MB.
    assert after - before < 5 * 1024, f"RSS grew by {after - before} KiB over 3,000 calls"
    assert ps.popen.poll() is None
    ps.kill(signal.SIGTERM)
    assert ps.wait(10) == ExitCode.SIGTERM
