"""The seed's half-year table, reproduced through Asterisk's own files and the CLI.

Asterisk queue_log and cdr-csv Master.csv files for 2013-07-01 .. 2013-12-31 (Beijing
time) hold 5,360 calls answered by agents, 1,048,860 s (17,481 min) of talk between them,
and 8,305 calls served by the IVR alone. `hotline calls import` reads them and `hotline
report` must print exactly what the seed's table says: 5,360, 8,305, 17,481 min, 196 s.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import subprocess
import sys
import zoneinfo
from pathlib import Path

from core.db import Store

ROOT = Path(__file__).resolve().parents[2]
ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
QUEUE = "hotline-12333"
AGENT_CALLS, IVR_CALLS, TALK_S = 5_360, 8_305, 17_481 * 60


def _talk_times(rng: random.Random) -> list[int]:
    """5,360 talk times (20 s .. 15 min) that add up to exactly 1,048,860 s."""
    times = [rng.randint(60, 330) for _ in range(AGENT_CALLS)]
    gap = TALK_S - sum(times)
    i = 0
    while gap:
        step = max(-1, min(1, gap))
        if 20 <= times[i] + step <= 900:
            times[i] += step
            gap -= step
        i = (i + 1) % AGENT_CALLS
    return times


def _moments(rng: random.Random, n: int) -> list[dt.datetime]:
    """Call starts on working days, 08:30 .. 17:00 local, most in the morning; in UTC."""
    days = [dt.date(2013, 7, 1) + dt.timedelta(days=d) for d in range(184)]
    weekdays = [d for d in days if d.weekday() < 5]
    out = []
    for _ in range(n):
        day = rng.choice(weekdays)
        minute = int(min(510, max(0, rng.gauss(150, 120))))  # after 08:30
        local = dt.datetime.combine(day, dt.time(8, 30), ZONE) + dt.timedelta(
            minutes=minute, seconds=rng.randint(0, 59)
        )
        out.append(local.astimezone(dt.UTC))
    return sorted(out)


def epoch(t: dt.datetime) -> int:
    return int(t.timestamp())


def _cdr(uid: str, caller: str, start: dt.datetime, answer: dt.datetime, end: dt.datetime, app: str) -> list[str]:
    t = "%Y-%m-%d %H:%M:%S"
    total = int((end - start).total_seconds())
    return [
        "", caller, "12333", "hotline", f'"{caller}" <{caller}>', f"PJSIP/trunk-{uid.replace('.', '')[-8:]}", "",
        app, "", start.strftime(t), answer.strftime(t), end.strftime(t), str(total),
        str(int((end - answer).total_seconds())), "ANSWERED", "DOCUMENTATION", uid, "",
    ]  # fmt: skip


def write_half_year(folder: Path) -> tuple[Path, Path]:
    """queue_log and Master.csv as Asterisk 22 writes them (shared/fixtures/asterisk22)."""
    rng = random.Random(12333)
    talks = _talk_times(rng)
    starts = _moments(rng, AGENT_CALLS + IVR_CALLS)
    kinds = ["agent"] * AGENT_CALLS + ["ivr"] * IVR_CALLS
    rng.shuffle(kinds)
    queue_log: list[tuple[int, str]] = []
    rows = io.StringIO()
    writer = csv.writer(rows, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    agent_i = 0
    for n, (start, kind) in enumerate(zip(starts, kinds, strict=True)):
        uid = f"{int(start.timestamp())}.{n}"
        caller = f"139{n:08d}"
        ivr_s = rng.randint(15, 90)
        if kind == "ivr":
            end = start + dt.timedelta(seconds=ivr_s)
            writer.writerow(_cdr(uid, caller, start, start, end, "AGI"))
            continue
        talk, wait = talks[agent_i], rng.randint(2, 45)
        agent = f"10{agent_i % 12 + 1:02d}"
        agent_i += 1
        entered = start + dt.timedelta(seconds=ivr_s)
        connected = entered + dt.timedelta(seconds=wait)
        end = connected + dt.timedelta(seconds=talk)
        queue_log += [
            (epoch(entered), f"{epoch(entered)}|{uid}|{QUEUE}|NONE|ENTERQUEUE||{caller}|1"),
            (epoch(connected), f"{epoch(connected)}|{uid}|{QUEUE}|{agent}|CONNECT|{wait}|{uid}9|3"),
            (epoch(end), f"{epoch(end)}|{uid}|{QUEUE}|{agent}|COMPLETECALLER|{wait}|{talk}|1"),
        ]
        writer.writerow(_cdr(uid, caller, start, start, end, "Queue"))
    log_path, csv_path = folder / "queue_log", folder / "Master.csv"
    log_path.write_text("".join(line + "\n" for _, line in sorted(queue_log, key=lambda e: e[0])), encoding="utf-8")
    csv_path.write_text(rows.getvalue(), encoding="utf-8")
    return log_path, csv_path


def hotline(url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        "HOTLINE_DATABASE_URL": url,
        "HOTLINE_SECURITY_PIN_PEPPER": "p",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "hotline", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_seed_half_year_table_comes_out_exactly(store: Store, tmp_path: Path) -> None:
    queue_log, master = write_half_year(tmp_path)
    imported = hotline(store.url, "calls", "import", "--queue-log", str(queue_log), "--cdr-csv", str(master))
    assert imported.returncode == 0, imported.stderr
    assert f"{AGENT_CALLS + IVR_CALLS} calls: {AGENT_CALLS + IVR_CALLS} new" in imported.stdout

    done = hotline(store.url, "report", "--from", "2013-07-01", "--to", "2013-12-31", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["agent_calls"] == 5_360
    assert data["automated_calls"] == 8_305
    assert data["agent_talk_seconds"] == 1_048_860
    assert data["agent_talk_minutes"] == 17_481
    assert data["avg_agent_talk_seconds"] == 196  # 195.68, rounded half up
    assert data["abandoned_calls"] == 0 and data["service_level"] is not None
    assert sum(a["calls"] for a in data["per_agent"]) == 5_360 and len(data["per_agent"]) == 12
    assert sum(m["agent_calls"] for m in data["by_month"]) == 5_360 and len(data["by_month"]) == 6
    assert sum(d["automated_calls"] for d in data["by_day"]) == 8_305
    assert all(h["calls"] == 0 for h in data["per_hour"] if h["hour"] < 8 or h["hour"] > 17)
    assert [d["calls"] for d in data["per_weekday"]][5:] == [0, 0]  # no weekend calls were made

    text = hotline(store.url, "report", "--from", "2013-07-01", "--to", "2013-12-31")
    assert text.returncode == 0, text.stderr
    for figure in ("5,360", "8,305", "17,481", "196"):
        assert figure in text.stdout
    assert "人工服务量" in text.stdout and "自动语音服务量" in text.stdout

    # Importing the same files again changes nothing.
    again = hotline(store.url, "calls", "import", "--queue-log", str(queue_log), "--cdr-csv", str(master))
    assert f"{AGENT_CALLS + IVR_CALLS} unchanged" in again.stdout
    same = hotline(store.url, "report", "--from", "2013-07-01", "--to", "2013-12-31", "--format", "json")
    assert {k: v for k, v in json.loads(same.stdout).items() if k != "generated_at"} == {
        k: v for k, v in data.items() if k != "generated_at"
    }
