"""`hotline report staffing`: agents needed per hour of the coming week (reports/staffing.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import zoneinfo

from core.settings import Settings


def cmd_staffing(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store
    from reports import staffing, staffing_render

    if args.from_ is not None or args.to is not None:
        print(
            "report staffing: plans the coming week from --weeks of history; --from/--to do not apply", file=sys.stderr
        )
        return 2
    if args.format not in ("text", "json", "csv"):
        print(f"report staffing: --format {args.format}: choose text, json or csv", file=sys.stderr)
        return 2
    now = None
    if args.today is not None:
        try:
            day = dt.date.fromisoformat(args.today.strip())
        except ValueError:
            print(f"report staffing: --today {args.today!r}: not a date; write it as YYYY-MM-DD", file=sys.stderr)
            return 2
        # Noon of that day: the plan starts the day after, whatever the hour.
        now = dt.datetime.combine(day, dt.time(12), zoneinfo.ZoneInfo(settings.queue.timezone))
    try:
        plan = staffing.build(open_store(settings), settings.queue, args.weeks, now)
    except staffing.StaffingError as exc:
        print(f"report staffing: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        out = staffing_render.as_json(plan)
    elif args.format == "csv":
        out = staffing_render.as_csv(plan).rstrip("\n")
    else:
        out = staffing_render.text(plan, args.lang)
    if args.output is None:
        print(out)
    else:
        args.output.write_text(out + "\n", encoding="utf-8")
        print(f"report staffing: {args.output} written")
    return 0
