"""The `hotline` command line."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from core import sample
from core.errors import HotlineError
from core.settings import Settings, load_settings
from hotline import (
    audit_cli,
    backup_cli,
    callers_cli,
    cluster_cli,
    fake12345,
    install_cli,
    kb_cli,
    notices_cli,
    prefs_cli,
    sip_cli,
)
from hotline.errors import UsageError
from ivr.dialplan import CALLER_SPEECH

log = logging.getLogger("hotline")
Handler = Callable[[Settings, argparse.Namespace], int]


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.serve import COMPONENTS, serve

    only = tuple(p.strip() for p in args.only.split(",")) if args.only else COMPONENTS
    unknown = [p for p in only if p not in COMPONENTS]
    if unknown:
        print(
            f"hotline serve: unknown component(s) {', '.join(unknown)}; this build runs {', '.join(COMPONENTS)}",
            file=sys.stderr,
        )
        return 2
    if args.workers is not None:
        settings = settings.model_copy(update={"agi": settings.agi.model_copy(update={"workers": args.workers})})
    asyncio.run(serve(settings, only, worker=args.worker, config=args.config))
    return 0


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from hotline import doctor

    findings = doctor.run(settings, expect_head=args.expect_head)
    if args.format == "json":
        _print_json({"status": doctor.exit_status(findings), "findings": [f.as_json() for f in findings]})
    else:
        print(doctor.as_text(findings))
    return doctor.exit_status(findings)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.sip_cli import ban_state
    from hotline.status import NotRunning, as_text, ask_health

    # The SIP bans belong to this host's Asterisk, not to `hotline serve`: asked here.
    bans = ban_state(settings)
    try:
        answer = ask_health(settings.web)
    except NotRunning as exc:
        print(f"hotline status: {exc}", file=sys.stderr)
        print(bans.as_text(), file=sys.stderr)
        return 3  # LSB: "program is not running"
    if args.format == "json":
        _print_json({**answer, "sip_bans": bans.as_json()})
    else:
        print(as_text(answer))
        print(bans.as_text())
    return 0 if answer.get("ok") else 1


def cmd_asterisk(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.asterisk import LocalAsterisk

    local = LocalAsterisk(settings)
    if args.action == "up":
        from core.sip_phones import phone_entries
        from hotline.wiring import open_store

        # The agents' phones in the store become pjsip.conf's endpoints.
        local = LocalAsterisk(settings, phones=phone_entries(open_store(settings), settings))
        status = local.up()
    else:
        if args.action == "down":
            local.down()
        status = replace(local.status(), bans=local.sip_bans().state().label)
    _print_json({k: str(v) if isinstance(v, Path) else v for k, v in vars(status).items()})
    return 0 if args.action == "down" or status.running else 1


def cmd_call(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store
    from ivr.caller import place_call, wait_hung_up
    from ivr.trail import find_call_id, show_call

    settings.require_secrets("ami.secret")
    uniqueid = asyncio.run(
        place_call(
            settings,
            args.dtmf,
            lead_s=args.lead,
            tail_s=args.tail,
            caller_id=args.caller_id,
            speak=args.speak,
            then=args.then,
        )
    )
    print(f"placed call, Asterisk uniqueid {uniqueid}; waiting for it to end", file=sys.stderr)
    asyncio.run(wait_hung_up(settings, uniqueid, timeout_s=args.timeout))
    store = open_store(settings)
    call_id = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        call_id = find_call_id(store, uniqueid=uniqueid)
        if call_id is not None and show_call(store, call_id, actor=_actor())["ended_at"]:
            break
        time.sleep(0.2)
    if call_id is None:
        print("the call reached no IVR session: is `hotline serve` running?", file=sys.stderr)
        return 1
    _print_json(show_call(store, call_id, actor=_actor()))
    return 0


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_calls(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store
    from ivr.trail import find_call_id, show_call

    store = open_store(settings)
    call_id = find_call_id(store, None if args.last else args.id)
    if call_id is None:
        print(f"no call {'recorded yet' if args.last or not args.id else repr(args.id)}", file=sys.stderr)
        return 1
    data = show_call(store, call_id, actor=_actor())
    if args.format == "json":
        _print_json(data)
        return 0
    node = f"  on {data['node']}" if data["node"] else ""
    print(
        f"call {data['id']}  {data['started_at']} .. {data['ended_at']}  {data['outcome']} "
        f"(ended by {data['ended_by']}){node}"
    )
    for st in data["trail"]:
        extra = {k: v for k, v in st.items() if k not in ("seq", "at", "kind", "node")}
        print(f"  {st['seq']:3d} {st['kind']:<10} {st['node'] or '':<14} {json.dumps(extra, ensure_ascii=False)}")
    if data["queue"]:
        print(
            f"queue {data['queue']}: waited {data['queue_wait_s']} s, agent {data['agent'] or '-'}, "
            f"talked {data['talk_s']} s, {data['queue_exit'] or 'in progress'}"
        )
    for conf in data["conferences"]:
        print(f"three-party call {conf['id']} with {conf['target']}: {conf['state']}")
        for leg in conf["legs"]:
            print(f"    {leg['party']:<7} {leg['joined_at']} .. {leg['left_at'] or 'now'}  {leg['talk_s']} s")
    return 0


def cmd_calls_import(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store
    from ivr.records import import_files
    from ivr.trail import import_spool

    if not (args.queue_log or args.cdr_csv or args.spool):
        print("calls import: give --queue-log, --cdr-csv and/or --spool", file=sys.stderr)
        return 2
    for path in (args.queue_log, args.cdr_csv):
        if path is not None and not path.is_file():
            print(f"calls import: no such file {path}", file=sys.stderr)
            return 1
    store = open_store(settings)
    if args.spool is not None:
        if not args.spool.is_dir():
            print(f"calls import: no spool directory {args.spool}", file=sys.stderr)
            return 1
        print(f"imported {import_spool(store, args.spool)} spooled call(s) from {args.spool}")
    if args.queue_log or args.cdr_csv:
        print(import_files(store, args.queue_log, args.cdr_csv).summary())
    return 0


def cmd_agents(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store
    from ivr.agents import AgentControl

    settings.require_secrets("ami.secret")
    control = AgentControl(settings, open_store(settings))
    if args.agents_action == "list":
        views = control.list()
    elif args.agents_action == "login":
        queues = tuple(args.queue or ["hotline-12333"])
        views = [
            asyncio.run(
                control.login(
                    args.agent,
                    args.name or f"Agent {args.agent}",
                    args.interface,
                    queues,
                    paused=args.paused is not None,
                    reason=args.paused,
                )
            )
        ]
    elif args.agents_action == "logout":
        views = [asyncio.run(control.logout(args.agent))]
    elif args.agents_action == "pause":
        views = [asyncio.run(control.pause(args.agent, args.reason))]
    elif args.agents_action == "unpause":
        views = [asyncio.run(control.unpause(args.agent))]
    elif args.agents_action == "skills":
        if args.set is None:
            from ivr.skills import skills_of

            _print_json({"agent": args.agent, "skills": skills_of(control.store, args.agent)})
        else:
            saved = asyncio.run(control.set_skills(args.agent, args.set.split(",")))
            _print_json({"agent": args.agent, "skills": saved})
        return 0
    elif args.agents_action == "conference":
        return _conference(settings, args)
    else:
        return _monitor(settings, args)
    _print_json([vars(v) for v in views])
    return 0


def _conference(settings: Settings, args: argparse.Namespace) -> int:
    """`hotline agents conference AGENT NUMBER` (三方通话), or `--leave`."""
    import dataclasses

    from hotline.wiring import open_store
    from ivr.conference import Conferences

    conferences = Conferences(settings, open_store(settings))
    if args.leave:
        view = asyncio.run(conferences.leave(args.agent))
    elif args.target is None:
        raise SystemExit("hotline agents conference: give the department's number or the phone to add, or --leave")
    else:
        view = asyncio.run(conferences.start(agent_id=args.agent, target=args.target, actor=_actor()))
    _print_json(dataclasses.asdict(view))
    return 0


def _monitor(settings: Settings, args: argparse.Namespace) -> int:
    """`hotline agents monitor AGENT --mode … --from PHONE`: ring PHONE into the agent's call."""
    from hotline.wiring import open_store
    from ivr.monitor import Monitoring

    monitoring = Monitoring(settings, open_store(settings))
    if args.stop is not None:
        _print_json(vars(asyncio.run(monitoring.stop(args.stop))))
        return 0
    if args.agent is None:
        _print_json([vars(v) for v in monitoring.sessions(open_only=not args.all)])
        return 0
    if args.phone is None:
        raise SystemExit("hotline agents monitor: --from PHONE is required with an agent")
    view = asyncio.run(
        monitoring.start(
            username=args.supervisor, agent_id=args.agent, mode=args.mode, phone=args.phone, cli_actor=_actor()
        )
    )
    _print_json(vars(view))
    return 0


def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UsageError("the two passwords differ")
    return first


def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    from console import accounts
    from hotline.wiring import open_store

    store = open_store(settings)
    if args.users_action == "add":
        password = _new_password(args)
        user = accounts.add_user(
            store,
            args.username,
            password,
            args.role,
            args.name,
            args.agent_id,
            args.interface,
            args.department,
            settings.cases.departments,
        )
        log.info("console account %s (%s) saved by %s", user.username, user.role, _actor())
        _print_json(vars(user))
    else:
        _print_json([vars(u) for u in accounts.list_users(store)])
    return 0


def cmd_notices(settings: Settings, args: argparse.Namespace) -> int:
    return notices_cli.run(settings, args, _actor())


def cmd_prefs(settings: Settings, args: argparse.Namespace) -> int:
    return prefs_cli.run(settings, args, _actor())


def cmd_callers(settings: Settings, args: argparse.Namespace) -> int:
    return callers_cli.run(settings, args, _actor())


def cmd_orders(settings: Settings, args: argparse.Namespace) -> int:
    from hotline import orders

    return orders.run(settings, args, _actor())


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.audit_cli import run

    return run(settings, args, _actor())


def cmd_sip(settings: Settings, args: argparse.Namespace) -> int:
    return sip_cli.run(settings, args, _actor())


def cmd_cluster(settings: Settings, args: argparse.Namespace) -> int:
    return cluster_cli.run(settings, args, _actor())


def cmd_phones(settings: Settings, args: argparse.Namespace) -> int:
    from hotline import phones
    from hotline.wiring import open_store

    store = open_store(settings)
    if args.phones_action == "add":
        result = phones.add(settings, store, args, _actor())
    elif args.phones_action == "remove":
        result = phones.remove(settings, store, args, _actor())
    else:
        rows = phones.listing(settings, store)
        if args.format == "json":
            _print_json(rows)
        else:
            print(phones.as_text(rows))
        return 0
    print(result.pop("asterisk"), file=sys.stderr)
    _print_json(result)
    return 0


def cmd_events(settings: Settings, args: argparse.Namespace) -> int:
    import uuid

    from hotline.wiring import open_store
    from sms.intake import emit
    from sms.templates import TEMPLATES

    if args.event_type not in TEMPLATES:
        raise UsageError(f"unknown event type {args.event_type!r}; known: {', '.join(sorted(TEMPLATES))}")
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise UsageError("--payload must be a JSON object")
    key = args.key or f"cli:{uuid.uuid4()}"
    kind = TEMPLATES[args.event_type].subject_kind
    created = emit(open_store(settings), args.event_type, kind, args.subject, payload, key)
    _print_json({"idempotency_key": key, "created": created})
    return 0


# sms.audiences.AUDIENCES, named here so that `--help` needs no database modules
# (tests/store/test_sms_audiences.py checks that the two agree).
SEGMENT_NAMES = ("employers-in-arrears", "employers-all", "residents-interrupted")


def _batch_summary(p: Any) -> str:
    states = ", ".join(f"{k} {v}" for k, v in sorted(p.messages.items())) or "no messages yet"
    return f"batch {p.name} ({p.status}): {p.finished}/{p.total} settled; {states}; {p.failed_events} rows failed"


def cmd_sms_batch(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import business_port, open_store
    from sms import batch

    store = open_store(settings)
    if args.sms_action in ("pause", "resume"):
        batch.set_paused(store, args.name, args.sms_action == "pause")
        print(_batch_summary(batch.progress(store, args.name)))
        return 0
    if (args.file is None) == (args.segment is None):
        print("hotline sms batch: give a CSV file or --segment NAME (one of the two)", file=sys.stderr)
        return 2
    if args.segment is not None:
        port = business_port(settings, store)
        loaded = batch.load_segment(store, port, args.segment, args.period, args.deadline, args.name)
    else:
        loaded = batch.load(store, args.file, args.name)
    print(f"batch {loaded.name}: {loaded.rows} rows, {loaded.new_events} new events", flush=True)
    if args.no_wait:
        return 0
    from tqdm import tqdm

    # The sending is done by `hotline serve` (component sms); this follows it until every
    # row is settled. Ctrl-C stops following, not sending.
    with tqdm(total=loaded.rows, unit="msg", desc=loaded.name) as bar:
        while True:
            p = batch.progress(store, loaded.name)
            bar.n = p.finished
            bar.set_postfix_str(p.status)
            bar.refresh()
            if p.finished >= p.total:
                break
            time.sleep(0.5)
    print(_batch_summary(batch.progress(store, loaded.name)))
    return 0


def cmd_sms(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store
    from sms import link_status
    from sms.inbound import inbound_counts
    from sms.outbox import counts, event_counts, failure_reasons

    store = open_store(settings)
    try:
        events, messages, inbound = event_counts(store), counts(store), inbound_counts(store)
        reasons = failure_reasons(store)
        notices = notices_cli.counts(store)
        links = link_status.links(store, dt.datetime.now(dt.UTC))
    finally:
        store.dispose()
    if args.format == "json":
        _print_json(
            {
                "events": events,
                "messages": messages,
                "inbound": inbound,
                "event_failures": [{"reason": r, "events": n} for r, n in reasons],
                "notices": notices,
                "links": links,
            }
        )
        return 0
    for line in link_status.as_text(links) or ["smpp link: none recorded (no gateway has run `hotline serve` here)"]:
        print(line)
    print("events: " + ", ".join(f"{k} {v}" for k, v in sorted(events.items())))
    for category, states in sorted(messages.items()):
        print(f"{category}: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    print("inbound: " + ", ".join(f"{k} {v}" for k, v in inbound.items()))
    for reason, n in reasons:
        print(f"  failed events, {n}: {reason}")
    if notices["total"]:
        print(notices_cli.pointer(notices))
    return 0


def cmd_smsc_sim(settings: Settings, args: argparse.Namespace) -> int:
    from sms.sim_cli import parse_outcomes, parse_pairs, run
    from sms.simulator import SimConfig

    try:
        config = SimConfig(
            host=args.host or settings.smpp.host,
            port=args.port or settings.smpp.port,
            tps=args.tps,
            fail_every=parse_pairs(args.fail_every or [], int),
            error_rates=parse_pairs(args.error_rate or [], float),
            receipt_delay_s=args.receipt_delay,
            outcomes=parse_outcomes(args.outcomes),
            id_format=args.id_format,
            receipt_id_format=args.receipt_id_format,
            receipt_id_pad=args.receipt_id_pad,
            early_receipts=args.early_receipts,
            down_s=args.down,
            hang_after=args.hang_after,
            sick_after=args.sick_after,
        )
    except ValueError as exc:
        raise UsageError(f"smsc-sim: {exc}") from None
    asyncio.run(run(config, args.control_port))
    return 0


def cmd_ismg_sim(settings: Settings, args: argparse.Namespace) -> int:
    from sms.ismg_sim import IsmgConfig, run

    account, _, secret = args.account.partition(":")
    config = IsmgConfig(args.host, args.port, {"2.0": 0x20, "3.0": 0x30}[args.version], {account: secret})
    config.flow_every, config.flow_window, config.stall_after = args.flow_every, args.flow_window, args.stall_after
    config.early_reports, config.always_status3 = args.early_reports, args.status3
    asyncio.run(run(config, args.control_port))
    return 0


def cmd_prompts(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.catalogue import load_catalogue
    from ivr.prompts import build

    cat = load_catalogue(settings.ivr.prompts_dir / "catalogue.toml")
    report = build(cat, settings.ivr.prompts_dir / "build", force=args.force)
    print(f"prompts: {report.built} built, {report.unchanged} unchanged, {report.files} files checked")
    return 0


def cmd_sample(settings: Settings, args: argparse.Namespace) -> int:
    if args.what == "load":
        from hotline.wiring import open_store

        settings.require_secrets("security.pin_pepper")
        store = open_store(settings)
        if args.if_empty and sample.loaded_count(store):
            print(f"sample: {sample.loaded_count(store)} residents already in {settings.database.url}")
        else:
            n = sample.load(store, settings.security.pin_pepper, residents=args.residents)
            print(f"sample: {n} residents loaded into {settings.database.url}")
        print(kb_cli.seed_samples(settings))
        return 0
    _, people = sample.generate(residents=args.residents)
    rows = [
        {
            "id_number": r.id_number,
            "name": r.name,
            "pin": r.pin,
            "phone": r.phone,
            "pension_balance_fen": r.pension_balance_fen,
            "pension_balance_yuan": f"{r.pension_balance_fen / 100:.2f}",
            "pension_months": r.pension_months,
            "medical_balance_fen": r.medical_balance_fen,
            "medical_balance_yuan": f"{r.medical_balance_fen / 100:.2f}",
            "card_status": r.card_status,
        }
        for r in people
    ]
    if args.format == "json":
        _print_json(rows)
    else:
        for r in rows:
            print(
                f"{r['id_number']}  PIN {r['pin']}  {r['phone']}  pension {r['pension_balance_yuan']} "
                f"({r['pension_months']} months)  medical {r['medical_balance_yuan']}"
            )
    return 0


def cmd_report_or_staffing(settings: Settings, args: argparse.Namespace) -> int:
    if args.what == "staffing":
        from hotline.staffing_cli import cmd_staffing

        return cmd_staffing(settings, args)
    if args.from_ is None or args.to is None:
        print("report: give --from DATE and --to DATE (or `hotline report staffing`)", file=sys.stderr)
        return 2
    return cmd_report(settings, args)


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store
    from reports import render
    from reports.period import PeriodError, parse_period
    from reports.report import build

    try:
        period = parse_period(args.from_, args.to, settings.queue.timezone)
    except PeriodError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    if args.format == "pdf" and args.output is None:
        print("report: a PDF needs --output FILE.pdf", file=sys.stderr)
        return 2
    report = build(open_store(settings), period, settings.queue)
    if args.format == "csv":
        files = render.csv_tables(report)
        if args.output is None:
            for name, content in files.items():
                print(f"# {name}\n{content}")
            return 0
        args.output.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (args.output / name).write_text(content, encoding="utf-8")
        print(f"report: {len(files)} tables written to {args.output}/ ({', '.join(files)})")
        return 0
    if args.format == "pdf":
        try:
            args.output.write_bytes(render.as_pdf(report, args.lang))
        except render.RenderError as exc:
            print(f"report: {exc}", file=sys.stderr)
            return 1
        print(f"report: {args.output} written")
        return 0
    if args.format == "text":
        out = render.text(report, args.lang)
    elif args.format == "json":
        out = render.as_json(report)
    else:
        out = render.as_html(report, args.lang)
    if args.output is None:
        print(out)
    else:
        args.output.write_text(out + "\n", encoding="utf-8")
        print(f"report: {args.output} written")
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    import datetime as dt
    import zoneinfo

    from hotline import simulate
    from hotline.wiring import open_store
    from reports.period import PeriodError, parse_period

    store = open_store(settings)
    if args.clear:
        print(f"simulate: removed {simulate.clear(store)} simulated calls and their messages, events and callbacks")
        return 0
    if args.if_empty and simulate.simulated_calls(store):
        print("simulate: the store holds simulated traffic already; nothing added (--clear removes it)")
        return 0
    zone = settings.queue.timezone
    yesterday = dt.datetime.now(zoneinfo.ZoneInfo(zone)).date() - dt.timedelta(days=1)
    first = args.from_ or (yesterday - dt.timedelta(days=args.days - 1)).isoformat()
    try:
        period = parse_period(first, args.to or yesterday.isoformat(), zone)
    except PeriodError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    traffic = simulate.Traffic(args.calls_per_day, args.messages_per_day, seed=args.seed)
    written = simulate.simulate(store, period.first, period.last, zone, traffic)
    print(
        f"simulate: {period.label()}: {written['calls']} simulated calls, {written['messages']} messages, "
        f"{written['agent_events']} agent events, {written['callbacks']} callbacks "
        "(marked as simulated; `hotline simulate --clear` removes them)"
    )
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import make_url

    from hotline.wiring import open_store

    open_store(settings).dispose()
    shown = make_url(settings.database.url).render_as_string(hide_password=True)
    print(f"database {shown}: schema up to date")
    return 0


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 64, not {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotline", description="The 12333 hotline platform.")
    p.add_argument("--config", type=Path, help="TOML settings file (default: hotline.toml if present)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run FastAGI, the AMI monitor, the web console and the SMS gateway")
    s.add_argument("--only", help="comma-separated subset of: agi,ami,web,sms")
    s.add_argument("--workers", type=_workers, help="FastAGI processes sharing the port (default: agi.workers, 1)")
    s.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # started by a parent serve
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("status", help="ask the running `hotline serve` (its web port) which components are up")
    s.add_argument("--format", choices=("json", "text"), default="text")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("doctor", help="check the running site end to end; exit 0 all well, 1 warnings, 2 failures")
    s.add_argument("--format", choices=("json", "text"), default="text")
    s.add_argument("--expect-head", help="the audit chain's head kept outside the database (SEQ:HASH[:MAC])")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("asterisk", help="local Asterisk 22 in a debootstrap root")
    s.add_argument("action", choices=("up", "down", "status"))
    s.set_defaults(func=cmd_asterisk)
    cluster_cli.add_parser(sub, cmd_cluster)

    s = sub.add_parser("call", help="place a scripted test call into 12333 and print its trail")
    s.add_argument("--dtmf", required=True, help="digits to key; w = 0.5 s pause, W = 1 s pause")
    s.add_argument("--lead", type=float, default=1.0, help="seconds after answer before the first digit")
    s.add_argument("--tail", type=float, default=5.0, help="seconds to stay on the line after the last digit")
    s.add_argument(
        "--speak",
        nargs="?",
        const=CALLER_SPEECH,
        default="",
        metavar="SOUND",
        help=f"after the digits, play a sound as the caller's voice (a voice message; default {CALLER_SPEECH})",
    )
    s.add_argument("--then", default="", metavar="DTMF", help="digits to key after --speak ('#WW3': end, then send)")
    s.add_argument("--caller-id", default="13800000000")
    s.add_argument("--timeout", type=float, default=180.0, help="longest the call may last")
    s.set_defaults(func=cmd_call)

    s = sub.add_parser("calls", help="recorded calls")
    calls = s.add_subparsers(dest="calls_action", required=True)
    show = calls.add_parser("show", help="a call's trail")
    show.add_argument("id", nargs="?", help="call id or Asterisk uniqueid")
    show.add_argument("--last", action="store_true", help="the most recent call")
    show.add_argument("--format", choices=("json", "text"), default="text")
    show.set_defaults(func=cmd_calls)
    imp = calls.add_parser("import", help="Asterisk's queue_log and Master.csv, or calls spooled in an outage")
    imp.add_argument("--queue-log", type=Path, help="Asterisk's queue_log")
    imp.add_argument("--cdr-csv", type=Path, help="Asterisk's cdr-csv Master.csv")
    imp.add_argument("--spool", type=Path, help="spool directory (var/spool/calls)")
    imp.set_defaults(func=cmd_calls_import)

    s = sub.add_parser("report", help="the supervisors' call, SMS and casework report for a period; or staffing")
    s.add_argument(
        "what", nargs="?", choices=("staffing",), help="staffing: agents needed per hour of the coming week (Erlang C)"
    )
    s.add_argument("--from", dest="from_", metavar="DATE", help="first day, YYYY-MM-DD (local)")
    s.add_argument("--to", metavar="DATE", help="last day, included, YYYY-MM-DD (local)")
    s.add_argument("--weeks", type=int, help="staffing: weeks of history (default queue.staffing_weeks, 4)")
    s.add_argument("--today", metavar="DATE", help="staffing: plan the week after this day (default: today)")
    s.add_argument("--format", choices=("text", "json", "csv", "html", "pdf"), default="text")
    s.add_argument("--lang", choices=("zh", "en"), default="zh", help="labels in Chinese (default) or English")
    s.add_argument(
        "--output", type=Path, help="file to write (a folder for csv: one file per table); default: standard output"
    )
    s.set_defaults(func=cmd_report_or_staffing)

    s = sub.add_parser("simulate", help="fill the store with realistic demo traffic, marked as simulated")
    s.add_argument("--from", dest="from_", metavar="DATE", help="first day (default: --days before yesterday)")
    s.add_argument("--to", metavar="DATE", help="last day, included (default: yesterday)")
    s.add_argument("--days", type=int, default=30, help="how many days up to yesterday (default 30)")
    s.add_argument("--calls-per-day", type=int, default=110, help="calls on a weekday (weekends: a quarter)")
    s.add_argument("--messages-per-day", type=int, default=300)
    s.add_argument("--seed", type=int, default=12333)
    s.add_argument("--if-empty", action="store_true", help="only if no simulated traffic is there yet")
    s.add_argument("--clear", action="store_true", help="remove all simulated traffic, nothing else")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("agents", help="agent log-in, log-out and pauses (AMI QueueAdd/QueueRemove/QueuePause)")
    ag = s.add_subparsers(dest="agents_action", required=True)
    ag.add_parser("list", help="agents and their state").set_defaults(func=cmd_agents)
    login = ag.add_parser("login", help="add an agent to queues")
    login.add_argument("agent")
    login.add_argument("--interface", required=True, help="e.g. PJSIP/1001, or Local/1001-2-4@hotline-agents/n")
    login.add_argument("--name", help="member name shown in queue_log and reports")
    login.add_argument("--queue", action="append", help="queue (repeatable; default hotline-12333)")
    login.add_argument("--paused", metavar="REASON", help="log in paused, with this reason")
    login.set_defaults(func=cmd_agents)
    for verb in ("logout", "unpause"):
        v = ag.add_parser(verb)
        v.add_argument("agent")
        v.set_defaults(func=cmd_agents)
    pause = ag.add_parser("pause")
    pause.add_argument("agent")
    pause.add_argument("--reason", required=True, help="e.g. break, training, wrap-up")
    pause.set_defaults(func=cmd_agents)
    sk = ag.add_parser("skills", help="an agent's skills: languages and business lines ([skills] names)")
    sk.add_argument("agent")
    sk.add_argument(
        "--set", metavar="SKILLS", help="comma-separated, e.g. en,pension (empty: none); at once if logged in"
    )
    sk.set_defaults(func=cmd_agents)
    conf = ag.add_parser(
        "conference", help="三方通话: add a department's number (sip.departments) or a phone to the agent's call"
    )
    conf.add_argument("agent")
    conf.add_argument("target", nargs="?", help="a department's number, e.g. 8002, or a phone, e.g. 1002")
    conf.add_argument("--leave", action="store_true", help="the agent leaves; the caller stays with the department")
    conf.set_defaults(func=cmd_agents)
    mon = ag.add_parser(
        "monitor",
        help="a supervisor listens to, whispers to or barges into an agent's call (ChanSpy);"
        " without an agent: the sessions open now",
    )
    mon.add_argument("agent", nargs="?", help="the agent whose call (none: list the sessions open now)")
    mon.add_argument(
        "--mode",
        choices=("listen", "whisper", "barge"),
        default="listen",
        help="how it starts; the supervisor switches with keys 4 listen, 5 whisper, 6 barge",
    )
    mon.add_argument("--from", dest="phone", help="the supervisor's phone to ring: 2001 or PJSIP/2001")
    mon.add_argument("--supervisor", help="the supervisor's console account (audited as them; default: the CLI user)")
    mon.add_argument("--all", action="store_true", help="with no agent: ended sessions too (the last 200)")
    mon.add_argument("--stop", type=int, metavar="SESSION", help="end that session (hangs up the supervisor's phone)")
    mon.set_defaults(func=cmd_agents)

    s = sub.add_parser("users", help="web console accounts")
    us = s.add_subparsers(dest="users_action", required=True)
    us.add_parser("list", help="accounts and their roles").set_defaults(func=cmd_users)
    add = us.add_parser("add", help="create an account, or replace one (new password; signs it out)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=("agent", "supervisor", "admin", "department", "auditor"))
    add.add_argument("--name", help="display name")
    add.add_argument("--agent-id", help="agents: id in the agents table and queue_log, e.g. 1001")
    add.add_argument(
        "--interface", help="agents: the queue member, e.g. PJSIP/1001; supervisors: the phone monitoring rings"
    )
    add.add_argument("--department", help="department accounts: one of [cases] departments, e.g. 养老保险")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    add.set_defaults(func=cmd_users)

    from hotline import orders

    orders.add_parser(sub, cmd_orders)
    audit_cli.add_parser(sub, cmd_audit)

    s = sub.add_parser("phones", help="agents' SIP phones and softphones (pjsip.conf endpoints)")
    ph = s.add_subparsers(dest="phones_action", required=True)
    ls = ph.add_parser("list", help="phones and their registrations in the running Asterisk")
    ls.add_argument("--format", choices=("json", "text"), default="text")
    ls.set_defaults(func=cmd_phones)
    padd = ph.add_parser("add", help="a desk phone (endpoint = agent id), or the agent's softphone")
    padd.add_argument("agent", metavar="AGENT_ID", help="digits, e.g. 1001: the phone's SIP user name")
    padd.add_argument("--password-stdin", action="store_true", help="read the phone's SIP password from stdin")
    padd.add_argument("--softphone", action="store_true", help="the browser softphone AGENT_ID-web (derived password)")
    padd.set_defaults(func=cmd_phones)
    prm = ph.add_parser("remove", help="remove the agent's desk phone (or --softphone)")
    prm.add_argument("agent", metavar="AGENT_ID")
    prm.add_argument("--softphone", action="store_true")
    prm.set_defaults(func=cmd_phones)

    sip_cli.add_parser(sub, cmd_sip)

    s = sub.add_parser("events", help="business events, as the social-insurance system writes them")
    ev = s.add_subparsers(dest="events_action", required=True)
    emit_p = ev.add_parser("emit", help="INSERT one business event (idempotent by its key)")
    emit_p.add_argument("event_type", help="e.g. pension_credited (README lists them)")
    emit_p.add_argument("--subject", required=True, help="a person's ID number or a unit's credit code")
    emit_p.add_argument("--payload", required=True, help="the template's fields as a JSON object")
    emit_p.add_argument("--key", help="idempotency key (default: a new one)")
    emit_p.set_defaults(func=cmd_events)

    s = sub.add_parser("sms", help="the SMS gateway")
    sm = s.add_subparsers(dest="sms_action", required=True)
    st = sm.add_parser("status", help="events and messages by category and state")
    st.add_argument("--format", choices=("json", "text"), default="text")
    st.set_defaults(func=cmd_sms)
    bt = sm.add_parser(
        "batch", help="send a CSV file of events, or a named segment, as a named batch, following its progress"
    )
    bt.add_argument("file", type=Path, nargs="?", help="CSV: event_type, subject_id, then the template's fields")
    bt.add_argument("--segment", help=f"instead of a file: {', '.join(SEGMENT_NAMES)}")
    bt.add_argument("--period", help="the segment's month, YYYY-MM")
    bt.add_argument("--deadline", help="the segment's deadline to pay or declare, YYYY-MM-DD")
    bt.add_argument(
        "--name", help="batch name (default: the file's name, or SEGMENT-PERIOD); loading again adds nothing"
    )
    bt.add_argument("--no-wait", action="store_true", help="load and return; `hotline serve` sends it")
    bt.set_defaults(func=cmd_sms_batch)
    for verb in ("pause", "resume"):
        pr_ = sm.add_parser(verb, help=f"{verb} a batch (instant reminders are never held)")
        pr_.add_argument("name")
        pr_.set_defaults(func=cmd_sms_batch)

    s = sub.add_parser("smsc-sim", help="an SMPP 3.4 SMSC simulator (receipts, MO, throttling, faults)")
    s.add_argument("--host", help="default: smpp.host")
    s.add_argument("--port", type=int, help="default: smpp.port")
    s.add_argument("--tps", type=float, help="submits per second above which ESME_RTHROTTLED (0x58) answers")
    s.add_argument("--fail-every", action="append", metavar="STATUS:N", help="e.g. 0x14:7, repeatable")
    s.add_argument("--error-rate", action="append", metavar="STATUS:P", help="e.g. 0x08:0.01, repeatable")
    s.add_argument("--receipt-delay", type=float, default=0.2, metavar="S")
    s.add_argument("--outcomes", default="DELIVRD:1", help="receipt states and weights, e.g. DELIVRD:0.9,UNDELIV:0.1")
    ids = ("hex", "hex-lower", "dec")
    s.add_argument("--id-format", choices=ids, default="hex", help="message ids in submit_sm_resp")
    s.add_argument("--receipt-id-format", choices=ids, default="dec", help="message ids in receipts")
    s.add_argument("--receipt-id-pad", type=int, default=0, metavar="N", help="receipts' ids zero-padded to N digits")
    s.add_argument("--early-receipts", action="store_true", help="send each receipt before its submit_sm_resp")
    s.add_argument("--down", type=float, default=1.0, metavar="S", help="how long a drop refuses connections")
    s.add_argument(
        "--hang-after", type=int, metavar="N", help="after N submit_sm, the binds stop answering (TCP kept open)"
    )
    s.add_argument(
        "--sick-after",
        type=int,
        metavar="N",
        help="after N accepted segments, the binds answer every submit_sm with 0x14 (ESME_RMSGQFUL), new binds work",
    )
    s.add_argument("--control-port", type=int, help="line commands: stats | drop | hang | unhang | sick | mo ...")
    s.set_defaults(func=cmd_smsc_sim)

    s = sub.add_parser("ismg-sim", help="a CMPP 2.0/3.0 gateway simulator (reports, MO, flow control, faults)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7890)
    s.add_argument("--version", choices=("2.0", "3.0"), default="3.0")
    s.add_argument("--account", default="901234:secret", metavar="SOURCE_ADDR:SECRET")
    s.add_argument("--flow-every", type=int, metavar="N", help="every Nth SUBMIT answered Result 8")
    s.add_argument("--flow-window", type=int, metavar="W", help="SUBMITs beyond W a second answered Result 8")
    s.add_argument("--early-reports", action="store_true", help="each report before its SUBMIT_RESP")
    s.add_argument("--stall-after", type=int, metavar="N", help="a link stops reading after N PDUs, kept open")
    s.add_argument("--status3", action="store_true", help="every CONNECT answered Status 3")
    s.add_argument("--control-port", type=int, help="line commands: stats | drop | active | mo ...")
    s.set_defaults(func=cmd_ismg_sim)

    s = sub.add_parser("prompts", help="speech prompts")
    pr = s.add_subparsers(dest="prompts_action", required=True)
    b = pr.add_parser("build", help="synthesise changed prompts to 8 kHz WAV")
    b.add_argument("--force", action="store_true", help="rebuild every prompt")
    b.set_defaults(func=cmd_prompts)

    s = sub.add_parser("sample", help="the synthetic Anji dataset")
    s.add_argument("what", choices=("residents", "load"))
    s.add_argument("--format", choices=("json", "text"), default="text")
    s.add_argument("--residents", type=int, default=sample.DEFAULT_RESIDENTS)
    s.add_argument("--if-empty", action="store_true", help="load only into a store without residents")
    s.set_defaults(func=cmd_sample)

    kb_cli.add_parser(sub)
    fake12345.add_parser(sub)
    notices_cli.add_parser(sub, cmd_notices)
    prefs_cli.add_parser(sub, cmd_prefs)
    callers_cli.add_parser(sub, cmd_callers)

    backup_cli.add_parsers(sub)

    s = sub.add_parser("db", help="database schema")
    s.add_argument("action", choices=("upgrade",))
    s.set_defaults(func=cmd_db)
    install_cli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        for chatty in ("alembic", "panoramisk"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    handler: Handler = args.func
    try:
        settings = load_settings(args.config)
        return handler(settings, args)
    except HotlineError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `hotline sample residents | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
