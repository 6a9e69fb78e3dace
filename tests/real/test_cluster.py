"""The cluster for real: Kamailio as the SIP edge in front of two Asterisk nodes (the
session's root, each node on its own loopback address), two `hotline serve` FastAGI
servers on one PostgreSQL, and SIPp as the carrier calling the edge.

The session's own Asterisk keeps running beside the nodes (0.0.0.0:5060), so the nodes
answer SIP on port 5160 and the edge on 5180, and take RTP ports of their own."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from argparse import Namespace
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from core import sample, sip_phones
from core.cluster_settings import ClusterNode, ClusterSettings
from core.db import Store
from core.models import Call, Callback
from core.settings import Settings
from hotline import cluster_cli, phones
from ivr.agents import AgentControl
from ivr.cluster import Cluster
from ivr.dialplan import QUEUE_GENERAL
from ivr.outbound import originate, start_dial
from ivr.trail import show_call
from tests.conftest import PEPPER, PG_URL, REQUIRE_PG, SAMPLE_RESIDENTS, _fresh_pg_database, load_sample
from tests.real.baresip_phone import baresip_phone
from tests.real.serving import ALWAYS_OPEN, keypad
from tests.real.sip_setup import BAN_AFTER, CARRIER_UAS_PORT, GUESSER_ADDR, TEST_PHONES, sip_toml
from tests.sip_peers.guesser import guess
from tests.sip_peers.registrar import register
from tests.sip_peers.sipp import CarrierCall, CarrierUas, UacPlan, UacResult, UacRun, free_port, place_calls

pytestmark = pytest.mark.real

EDGE_PORT = 5180
NODE_SIP_PORT = 5160
# Nodes of the tests' own (their logs, spool and astdb apart from the demo's node1 and node2).
NODES = tuple(
    ClusterNode(
        name=f"tnode{i}",
        address=f"127.0.0.1{i}",
        sip_port=NODE_SIP_PORT,
        rtp_start=30000 + 1000 * (i - 1),
        rtp_end=30999 + 1000 * (i - 1),
    )
    for i in (1, 2)
)


@dataclass
class Serve:
    port: int
    process: subprocess.Popen[str]
    log: Path


@dataclass
class Running:
    settings: Settings
    cluster: Cluster
    store: Store
    serves: list[Serve]
    residents: list[sample.SampleResident]
    tmp: Path
    since: dt.datetime

    @property
    def edge(self) -> tuple[str, int]:
        return self.settings.cluster.edge_address, self.settings.cluster.edge_port


def _start_serve(settings: Settings, tmp: Path, port: int, only: str = "agi") -> Serve:
    toml = tmp / f"serve-{port}.toml"
    servers = ", ".join(f'"{s}"' for s in settings.agi.servers)
    cluster = f'enabled = true\nname = "{settings.cluster.name}"\nedge_port = {EDGE_PORT}\n'
    for node in settings.cluster.nodes:
        cluster += "\n[[cluster.nodes]]\n" + "".join(
            f"{key} = {value!r}\n".replace("'", '"') for key, value in node.model_dump().items()
        )
    toml.write_text(
        sip_toml(settings.sip) + f"\n[agi]\nservers = [{servers}]\n\n[cluster]\n{cluster}", encoding="utf-8"
    )
    env = {
        **os.environ,
        "HOTLINE_CONFIG": str(toml),
        "HOTLINE_DATABASE_URL": settings.database.url,
        "HOTLINE_SECURITY_PIN_PEPPER": PEPPER,
        "HOTLINE_AMI_SECRET": settings.ami.secret,
        "HOTLINE_AGI_PORT": str(port),
        "HOTLINE_ASTERISK_INSTANCE": settings.asterisk.instance,  # whose calls the catch-up imports
        # Where the root has the recordings bound (`hotline cluster up` from these settings).
        "HOTLINE_RECORDINGS_DIR": str(settings.recordings.dir.resolve()),
        "HOTLINE_NOTICES_SPEECH_DIR": str(settings.notices.speech_dir.resolve()),
        **ALWAYS_OPEN,
    }
    log = tmp / f"serve-{port}.log"
    with log.open("w") as stderr:  # the child has its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve", "--only", only],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdout is not None
    assert "ready" in process.stdout.readline(), log.read_text()
    return Serve(port, process, log)


@pytest.fixture(scope="module")
def running(asterisk_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("TEST_PG_URL is not set but PostgreSQL is required (make test sets it)")
        pytest.skip("PostgreSQL not configured: run through `make test`")
    tmp = tmp_path_factory.mktemp("cluster")
    since = dt.datetime.now(dt.UTC)
    url = _fresh_pg_database()
    store = Store(url)
    store.migrate()
    load_sample(store)
    ports = [free_port("127.0.0.1", tcp_too=True) for _ in range(2)]
    settings = asterisk_settings.model_copy(
        update={
            "database": asterisk_settings.database.model_copy(update={"url": url}),
            "agi": asterisk_settings.agi.model_copy(update={"servers": tuple(f"127.0.0.1:{p}" for p in ports)}),
            "cluster": ClusterSettings(name="test-cluster", edge_port=EDGE_PORT, nodes=NODES),
        }
    )
    for agent, password in TEST_PHONES.items():
        sip_phones.add_phone(store, settings, agent, password)
    cluster = Cluster(settings, phones=sip_phones.phone_entries(store, settings))
    status = cluster.up(2)
    # The first server also follows both nodes over AMI (the cluster's queue records).
    serves = [_start_serve(settings, tmp, ports[0], "agi,ami"), _start_serve(settings, tmp, ports[1])]
    deadline = time.monotonic() + 30
    while serves[0].log.read_text().count("AMI monitor: caught up") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    residents = sample.generate(residents=SAMPLE_RESIDENTS)[1]
    try:
        assert [n.state for n in status.nodes] == ["active", "active"], status
        yield Running(settings, cluster, store, serves, residents, tmp, since)
    finally:
        cluster.down()
        for serve in serves:
            if serve.process.poll() is None:
                serve.process.terminate()
                serve.process.wait(15)
            assert serve.process.stdout is not None
            serve.process.stdout.close()
        store.dispose()


def _pension_plan(running: Running, callers: list[str], index: int = 0) -> UacPlan:
    """Pension balance queries by resident `index`, one call from each of `callers`."""
    r = running.residents[index]
    return UacPlan(
        tuple(CarrierCall(c, "12333") for c in callers),
        dtmf=f"1W1W1W{keypad(r.id_number)}W{r.pin}",
        lead_s=1.0,
        tail_s=4.0,
        rate_per_s=5.0,
    )


def _pension_calls(running: Running, name: str, callers: list[str], index: int = 0) -> UacResult:
    return place_calls(running.edge, _pension_plan(running, callers, index), running.tmp / name, name)


def _short_calls(running: Running, name: str, callers: list[str]) -> UacResult:
    """Calls that hear the welcome and hang up: enough to see which node and server took
    them, in a quarter of a balance query's time."""
    plan = UacPlan(tuple(CarrierCall(c, "12333") for c in callers), lead_s=1.0, tail_s=3.0, rate_per_s=5.0)
    return place_calls(running.edge, plan, running.tmp / name, name)


def _finished_calls(
    running: Running, callers: list[str], timeout_s: float = 20.0, *, queued: bool = False
) -> list[Call]:
    """The calls from these numbers since the cluster came up: the nodes' queue_log and
    Master.csv keep earlier runs' calls, which the AMI monitor imports too. `queued`: once
    the AMI monitor wrote their queue facts too (a call an agent answered waits up to
    ivr.ami_events.COMPLETE_GRACE after its hang-up for its AgentComplete)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with running.store.session() as s:
            query = select(Call).where(Call.caller_number.in_(callers), Call.started_at >= running.since)
            calls = list(s.scalars(query).all())
        ended = all(c.ended_at is not None and (c.disposition is not None or not queued) for c in calls)
        if len(calls) == len(callers) and ended:
            return calls
        assert time.monotonic() < deadline, f"{len(calls)} of {len(callers)} calls recorded and ended"
        time.sleep(0.2)


def _heard_balance(running: Running, call: Call) -> bool:
    trail = show_call(running.store, call.id, actor="test")
    return any(
        s["kind"] == "result" and s.get("query") == "pension" and s.get("status") == "ok" for s in trail["trail"]
    )


def _node_of(call: Call) -> str:
    return (call.asterisk_uniqueid or "").split("-", 1)[0]


def test_carrier_calls_through_the_edge_spread_over_both_nodes(running: Running) -> None:
    callers = [f"138000{n:05d}" for n in range(1, 7)]
    result = _pension_calls(running, "spread", callers)
    assert result.successful, result.log[-3000:]
    calls = _finished_calls(running, callers)
    assert all(_heard_balance(running, c) for c in calls)
    # Each node's system name prefixes its uniqueids: both nodes took calls.
    assert {_node_of(c) for c in calls} == {"tnode1", "tnode2"}


def test_status_lists_the_edge_and_each_node(running: Running) -> None:
    shown = running.cluster.status().as_json()
    assert shown["edge"]["state"] == "running"
    assert shown["edge"]["port"] == EDGE_PORT
    nodes = {n["name"]: n for n in shown["nodes"]}
    assert set(nodes) == {"tnode1", "tnode2"}
    assert nodes["tnode1"]["address"] == "127.0.0.11"
    assert all(n["state"] == "active" and n["pid"] and n["calls"] == 0 for n in nodes.values())


def test_phones_registered_at_the_edge_answer_queued_calls_of_both_nodes_one_at_a_time(running: Running) -> None:
    """Agent 1001's baresip registers with the edge; callers reaching either node press 0
    and queue on their node; the edge rings the phone for one call at a time (486 to the
    other node's queue, which tries again), so the agent talks to each caller in turn."""
    cluster_settings = running.settings.model_copy(
        update={"cluster": running.settings.cluster.model_copy(update={"enabled": True})}
    )
    control = AgentControl(cluster_settings, running.store)
    assert len(control.targets) == 2
    # Two callers one after the other (the edge sends them to different nodes): the first
    # talks 8 s; the second, calling while the agent talks, waits and is answered after.
    callers = ["13840000001", "13840000002"]
    plans = [
        UacPlan((CarrierCall(callers[0], "12333"),), dtmf="0", lead_s=1.0, tail_s=8.0),
        UacPlan((CarrierCall(callers[1], "12333"),), dtmf="0", lead_s=1.0, tail_s=30.0),
    ]
    with baresip_phone(running.tmp / "baresip", "1001", TEST_PHONES["1001"], EDGE_PORT, run_s=240) as phone_log:
        edge_log = running.cluster.paths.log.stat().st_size
        # `hotline phones list` reads the edge's registrations: 1001 there, 1002 not.
        listed = {row["endpoint"]: row for row in phones.listing(cluster_settings, running.store)}
        assert (listed["1001"]["registered"], listed["1002"]["registered"]) == (True, False), listed
        assert str(listed["1001"]["user_agent"]).startswith("baresip"), listed["1001"]
        assert str(listed["1001"]["address"]).startswith("127.0.0.1:"), listed["1001"]
        asyncio.run(control.login("1001", "Agent 1001", "PJSIP/1001", (QUEUE_GENERAL,)))
        try:
            with UacRun(running.edge, plans[0], running.tmp / "queued-1", "queued-1") as first_run:
                # The second caller comes once the agent talks to the first.
                deadline = time.monotonic() + 30
                while b"Call established" not in phone_log.read_bytes():
                    assert time.monotonic() < deadline, phone_log.read_text(errors="replace")
                    time.sleep(0.1)
                with UacRun(running.edge, plans[1], running.tmp / "queued-2", "queued-2") as second_run:
                    results = [first_run.result(), second_run.result()]
        finally:
            asyncio.run(control.logout("1001"))
    assert all(r.successful for r in results), [r.log[-2000:] for r in results]
    calls = _finished_calls(running, callers, timeout_s=30, queued=True)
    assert {_node_of(c) for c in calls} == {"tnode1", "tnode2"}
    assert all((c.disposition, c.agent) == ("agent", "Agent 1001") for c in calls), [
        (c.disposition, c.agent, c.queue_exit) for c in calls
    ]
    with running.cluster.paths.log.open("rb") as log:
        log.seek(edge_log)
        errors = [line for line in log.read().decode(errors="replace").splitlines() if " ERROR: " in line]
    assert errors == [], errors[:5]  # e.g. the agents' lock without its lock set
    first, second = sorted(calls, key=lambda c: c.answered_at or c.started_at)
    assert first.answered_at is not None and second.answered_at is not None and first.talk_s is not None
    # Never two at once: the second caller was answered after the first call's talk ended.
    assert second.answered_at >= first.answered_at + dt.timedelta(seconds=first.talk_s)


def test_a_fastagi_server_gone_the_other_serves_every_call(running: Running) -> None:
    gone = running.serves[1]
    gone.process.send_signal(signal.SIGKILL)
    gone.process.wait(10)
    callers = [f"138100{n:05d}" for n in range(1, 5)]
    result = _short_calls(running, "agi-gone", callers)
    assert result.successful, result.log[-3000:]
    calls = _finished_calls(running, callers)
    assert all((c.outcome, c.ended_by) == ("caller_hangup", "caller") for c in calls)
    assert {_node_of(c) for c in calls} == {"tnode1", "tnode2"}  # both nodes fell over to the live server
    live = running.serves[0].log.read_text()
    assert all(f"call {c.id}: start" in live for c in calls)


def _in_progress_on(running: Running, node: str, callers: list[str]) -> list[Call]:
    with running.store.session() as s:
        query = select(Call).where(
            Call.caller_number.in_(callers), Call.ended_at.is_(None), Call.started_at >= running.since
        )
        calls = s.scalars(query).all()
    return [c for c in calls if _node_of(c) == node]


def test_a_node_killed_mid_call_its_calls_end_as_lost_new_calls_go_to_the_other_and_it_rejoins(
    running: Running,
) -> None:
    node1 = running.cluster.asterisks(running.cluster.nodes())[0]
    pid = node1.running_pid()
    assert pid is not None
    r = running.residents[2]
    during = [f"138200{n:05d}" for n in range(1, 5)]
    plan = UacPlan(
        tuple(CarrierCall(c, "12333") for c in during),
        dtmf=f"1W1W1W{keypad(r.id_number)}W{r.pin}",
        tail_s=2.0,
        rate_per_s=4.0,
    )
    with UacRun(running.edge, plan, running.tmp / "node-gone", "node-gone") as run:
        # Killed while its calls are in the IVR (their records begun, not ended).
        deadline = time.monotonic() + 30
        while not _in_progress_on(running, "tnode1", during):
            assert time.monotonic() < deadline, "no call in progress on node1"
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # Calls placed at once after the kill: the edge tries node1, hears nothing within
        # cluster.node_answer_ms, marks it down and sends them to node2.
        after = [f"138250{n:05d}" for n in range(1, 5)]
        result = _short_calls(running, "after-kill", after)
        run.result()
    assert result.successful, result.log[-3000:]
    calls = _finished_calls(running, after)
    assert {_node_of(c) for c in calls} == {"tnode2"}
    assert all((c.outcome, c.ended_by) == ("caller_hangup", "caller") for c in calls)
    assert running.cluster.dispatcher_states()["127.0.0.11"] == "inactive"
    # The calls that were on node1 are over, and their records say Asterisk went away;
    # node2's calls of that round went on to the balance.
    during_calls = _finished_calls(running, during)
    lost = [c for c in during_calls if _node_of(c) == "tnode1"]
    assert lost and all((c.outcome, c.ended_by) == ("failed", "asterisk") for c in lost)
    assert all(_heard_balance(running, c) for c in during_calls if _node_of(c) == "tnode2")
    assert time.monotonic() - killed_at < 120
    # Started again (`hotline cluster up` does the same): the edge's probes take it back.
    status = running.cluster.up(2)
    assert [n.state for n in status.nodes] == ["active", "active"], status
    callers = [f"138300{n:05d}" for n in range(1, 5)]
    assert _short_calls(running, "rejoined", callers).successful
    assert {_node_of(c) for c in _finished_calls(running, callers)} == {"tnode1", "tnode2"}


def test_a_cluster_on_sqlite_is_refused_with_the_reason(tmp_path: Path) -> None:
    env = {**os.environ, "HOTLINE_DATABASE_URL": f"sqlite:///{tmp_path}/one.db", "HOTLINE_CONFIG": "/dev/null"}
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "cluster", "up", "--nodes", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr
    assert "SQLite" in done.stderr


def test_password_guessing_at_the_edge_is_banned_while_phones_elsewhere_register(running: Running) -> None:
    """The edge counts failed authentications per address as fail2ban does for one Asterisk
    (sip.ban_after, then a ban of sip.ban_s): a guesser from inside the phones' networks is
    answered ban_after - 1 times, then nothing, not even for the right password; a phone
    elsewhere registers meanwhile; `hotline cluster bans` lists it and `unban` lets it in.
    At a common tool's rate (160 a second) it gets no further: ban_after - 1 answers."""
    work = running.tmp / "guessing"
    # Slowly (8 guesses a second, below pike's flood density): the failures are what bans.
    # (The count was once a string: "1" + 1 is "11", and a phone with a mistyped password
    # was banned at its second try.)
    guessed = guess(running.edge, "1002", [f"slow-{n:02d}" for n in range(30)], source=GUESSER_ADDR, rate_per_s=8)
    assert guessed.count(200) == 0
    # The ban is taken in the route that counts the failure: no reply to the ban_after'th.
    assert guessed.count(401) == BAN_AFTER - 1, guessed.counted
    assert guessed.count(None) == 30 - (BAN_AFTER - 1)
    code, shown = _cluster_cli(running, "bans", "json")
    assert code == 0 and json.loads(shown)["bans"] == [GUESSER_ADDR]
    right = register(running.edge, "1002", TEST_PHONES["1002"], work / "banned", source=GUESSER_ADDR)
    assert 200 not in right.answers, right.answers
    elsewhere = register(running.edge, "1001", TEST_PHONES["1001"], work / "elsewhere", source="127.0.0.1")
    assert elsewhere.answers[200] == 1, elsewhere.answers
    code, shown = _cluster_cli(running, "unban", "text", GUESSER_ADDR)
    assert (code, shown.strip()) == (0, f"{GUESSER_ADDR} may reach the SIP edge again")
    assert running.cluster.bans() == []
    again = register(running.edge, "1002", TEST_PHONES["1002"], work / "unbanned", source=GUESSER_ADDR, expires=0)
    assert again.answers[200] == 1, again.answers
    # At a common guessing tool's rate: the same count, kept across Kamailio's processes.
    fast = guess(running.edge, "1002", [f"fast-{n:03d}" for n in range(100)], source=GUESSER_ADDR, rate_per_s=160)
    assert (fast.count(200), fast.count(401)) == (0, BAN_AFTER - 1), fast.counted
    assert running.cluster.bans() == [GUESSER_ADDR]
    assert running.cluster.unban(GUESSER_ADDR)
    register(running.edge, "1001", TEST_PHONES["1001"], work / "gone", source="127.0.0.1", expires=0, everywhere=True)


def _cluster_cli(running: Running, action: str, form: str, address: str | None = None) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        args = Namespace(action=action, format=form, address=address, nodes=None)
        code = cluster_cli.run(running.settings, args, "cli:test")
    return code, out.getvalue()


def test_a_restart_of_the_edge_leaves_established_calls_up(running: Running) -> None:
    """The edge keeps no state that an established call needs: killed (-9) and started
    again while pension calls are in the IVR, the calls go on to the balance and end with a
    BYE through the new edge (record-route names its address, not its process)."""
    callers = [f"138450{n:05d}" for n in range(1, 3)]
    plan = _pension_plan(running, callers, 3)
    with UacRun(running.edge, plan, running.tmp / "edge-restart", "edge-restart") as run:
        deadline = time.monotonic() + 30
        while len(_in_progress_on(running, "tnode1", callers) + _in_progress_on(running, "tnode2", callers)) < 2:
            assert time.monotonic() < deadline, "the calls did not begin"
            time.sleep(0.1)
        pid = running.cluster.edge_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        status = running.cluster.up(2)  # what a supervisor (systemd) does: start it again
        assert status.edge_pid not in (None, pid)
        result = run.result()
    assert result.successful == len(callers), result.log[-3000:]
    calls = _finished_calls(running, callers, timeout_s=30)
    assert all(_heard_balance(running, c) for c in calls)
    assert all(c.outcome != "failed" for c in calls), [(c.outcome, c.ended_by) for c in calls]


def test_a_callback_leaves_through_a_node_and_the_edges_trunk_port_to_the_carrier(running: Running) -> None:
    """A callback's call out, placed through whichever node answers AMI first, goes to the
    carrier through the edge in the carrier's form with the hotline's number, and its
    outcome comes back through that node's AMI monitor to the callback."""
    settings = running.settings.model_copy(
        update={"cluster": running.settings.cluster.model_copy(update={"enabled": True})}
    )
    with running.store.session() as s:
        cb = Callback(
            call_id=str(uuid.uuid4()),
            number="+86 138-0013-8002",
            queue=QUEUE_GENERAL,
            reason="long_wait",
            status="taken",  # by agent 1001 on the desk
            agent_id="1001",
        )
        s.add(cb)
        s.flush()
        callback_id = cb.id
    assert start_dial(running.store, "1001", callback_id)
    with CarrierUas(running.tmp / "callback-uas", CARRIER_UAS_PORT, mode="answer", hold_s=2.0) as uas:
        asyncio.run(originate(settings, running.store, "Local/1001-0-4@hotline-agents/n", callback_id, cb.number))
        (invite,) = uas.wait_invites(1, timeout_s=30)
        deadline = time.monotonic() + 30
        while True:
            with running.store.session() as s:
                done = s.get_one(Callback, callback_id)
            if done.dial_state != "dialing" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert (invite.request_user, invite.from_user) == ("13800138002", "12333")
    assert (done.dial_state, done.dial_detail) == ("answered", "ANSWER"), (done.dial_state, done.dial_detail)
