"""`hotline prefs show|set|clear|optout-voice`: a resident's (or an employer's) notice
channels from the command line (docs/sms-and-notices.md, "Notice channels: preferences").
Every read and change is audited as cli:<user>; input the preferences cannot keep exits 2
with one line saying what is allowed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from core.preferences import ALL, PreferenceRefused
from core.settings import Settings

USAGE = 2  # bad input, as argparse exits


def add_parser(sub: Any, handler: Callable[[Settings, argparse.Namespace], int]) -> None:
    s = sub.add_parser("prefs", help="notice channels a resident or employer chose: show, set, clear (audited)")
    ps = s.add_subparsers(dest="prefs_action", required=True)
    sh = ps.add_parser("show", help="every category's row and the choice the gateway makes, opt-outs, WeChat")
    sh.add_argument("id", help="the resident's ID number (or with --unit the employer's credit code)")
    sh.add_argument("--format", choices=("text", "json"), default="text")
    st = ps.add_parser("set", help="keep channels in order, language, quiet hours for a category ('*': all)")
    st.add_argument("id")
    st.add_argument("--channels", required=True, help="in order of preference, e.g. voice,sms (sms, voice, wechat)")
    st.add_argument("--category", default=ALL, help="a notice category, or '*' for every one without its own")
    st.add_argument("--language", default="zh", help="zh or en (default zh)")
    st.add_argument("--quiet", default="", help="no notices then, e.g. 21:00-08:00 (local time; default none)")
    st.add_argument("--call", help="the number to call for voice notices (default: the first registered phone)")
    cl = ps.add_parser("clear", help="drop a category's row, or every row (back to SMS)")
    cl.add_argument("id")
    cl.add_argument("--category", help="one category or '*' (default: every row)")
    for p in (sh, st, cl):
        p.add_argument("--unit", action="store_true", help="an employer, by unified social credit code")
    op = ps.add_parser("optout-voice", help="a number that asked not to be called with notices (--undo lifts it)")
    op.add_argument("phone")
    op.add_argument("--undo", action="store_true", help="allow notice calls to the number again")
    s.set_defaults(func=handler)


def run(settings: Settings, args: argparse.Namespace, actor: str) -> int:
    from hotline.wiring import open_store

    try:
        store = open_store(settings)
        try:
            return _run(settings, store, args, actor)
        finally:
            store.dispose()
    except PreferenceRefused as exc:
        print(f"hotline prefs {args.prefs_action}: {exc}", file=sys.stderr)
        return USAGE


def _run(settings: Settings, store: Any, args: argparse.Namespace, actor: str) -> int:
    if args.prefs_action == "show":
        return _show(settings, store, args, actor)
    if args.prefs_action == "set":
        return _set(settings, store, args, actor)
    if args.prefs_action == "clear":
        return _clear(store, args, actor)
    return _opt_out(settings, store, args, actor)


def _kind(args: argparse.Namespace) -> str:
    return "unit" if args.unit else "person"


def _show(settings: Settings, store: Any, args: argparse.Namespace, actor: str) -> int:
    from core.masking import mask_id, mask_phone
    from hotline.wiring import business_port
    from sms import preference_view as pv

    kind, subject_id = _kind(args), args.id.strip().upper()
    port = business_port(settings, store)
    shown = pv.view(
        store,
        port,
        actor=actor,
        kind=kind,
        subject_id=subject_id,
        channel="cli",
        country_code=settings.sms.country_code,
    )
    if args.format == "json":
        print(json.dumps({"subject_id": mask_id(subject_id), **shown.as_json()}, ensure_ascii=False, indent=2))
        return 0
    bound = "yes" if shown.wechat_bound else "no"
    print(f"{kind} {mask_id(subject_id)} · WeChat bound: {bound}")
    print(f"  {'*':<18} {pv.describe(shown.star) if shown.star else 'no row: every category without one by SMS'}")
    for c in shown.choices:
        how = {"own": "own row", ALL: "from *", "default": "no row: SMS"}[c.via]
        print(f"  {c.category:<18} {pv.describe(c.effective)}  ({how})")
    for category, row in sorted(shown.others.items()):
        print(f"  {category:<18} {pv.describe(row)}  (no such category for a {kind}: unused)")
    if not shown.numbers:
        print("  numbers: none registered")
    for n in shown.numbers:
        what = "registered" if n.registered else "to call"
        calls = "no notice calls (opted out)" if n.voice_opt_out else "notice calls allowed"
        print(f"  {mask_phone(n.phone)}  {what}, {calls}")
    return 0


def _set(settings: Settings, store: Any, args: argparse.Namespace, actor: str) -> int:
    from core.calls_out import refuse
    from core.destinations import DestinationPolicy, DestinationRefused
    from core.masking import mask_id
    from core.preferences import parse
    from sms import preference_view as pv

    kind, subject_id = _kind(args), args.id.strip().upper()
    pv.check_subject(kind, subject_id)
    pv.check_category(kind, args.category)
    quiet = pv.parse_quiet(args.quiet)
    policy = DestinationPolicy(settings.destinations, settings.sms.country_code)
    try:
        number = pv.phone_number(args.call, settings.sms.country_code, policy=policy)
    except PreferenceRefused as exc:
        if isinstance(exc.__cause__, DestinationRefused):
            refuse(store, exc.__cause__, where="prefs set --call", actor=actor)
        raise
    start, end = quiet if quiet else (None, None)
    preference = parse(args.channels, args.language.strip().lower(), start, end, number, source=actor)
    pv.set_choice(
        store,
        actor=actor,
        kind=kind,
        subject_id=subject_id,
        category=args.category,
        preference=preference,
        channel="cli",
    )
    print(f"{kind} {mask_id(subject_id)} {args.category}: {pv.describe(preference)}")
    return 0


def _clear(store: Any, args: argparse.Namespace, actor: str) -> int:
    from core.masking import mask_id
    from sms import preference_view as pv

    kind, subject_id = _kind(args), args.id.strip().upper()
    gone = pv.clear_choice(store, actor=actor, kind=kind, subject_id=subject_id, category=args.category, channel="cli")
    which = args.category or "every category"
    print(f"{kind} {mask_id(subject_id)} {which}: {gone} row(s) cleared; notices without a row go by SMS")
    return 0


def _opt_out(settings: Settings, store: Any, args: argparse.Namespace, actor: str) -> int:
    from core import preference_audit
    from core.masking import mask_phone
    from core.phones import spellings
    from hotline.wiring import business_port
    from sms import preference_view as pv

    phone = pv.phone_number(args.phone, settings.sms.country_code, what=f"{mask_phone(args.phone.strip())}")
    if phone is None:
        raise PreferenceRefused("no phone number given")
    owners = business_port(settings, store).phone_owners(spellings(phone, settings.sms.country_code))
    with store.session() as s:
        changed = preference_audit.set_voice_opt_out(
            s,
            actor=actor,
            phone=phone,
            opted_out=not args.undo,
            source=actor,
            resident_id=owners.residents[0] if len(owners.residents) == 1 else None,
            channel="cli",
        )
    now = "notice calls allowed" if args.undo else "no notice calls"
    print(f"{mask_phone(phone)}: {now}" + ("" if changed else " (already so)"))
    return 0
