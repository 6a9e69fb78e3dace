"""The voice menu as data: load `ivr/menu.toml` into typed nodes and check it whole."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.catalogue import Catalogue
from ivr.errors import MenuError

DEFAULT_MENU = Path(__file__).resolve().parent / "menu.toml"
SAY_KINDS = ("p", "money", "months", "number", "period", "date", "digits")
VALIDATORS = ("id_number", "pin")
QUERIES = ("pension", "medical", "contributions", "unemployment", "card")
TRANSACTIONS = ("card_lost",)
MENU_KEYS = frozenset("123456789#")  # 0 and * are reserved: agent and repeat
# What a `message` node says besides its own prompt (intro) and confirm (the review's
# choices): ask for the ID number, the ID number given up on, before the beep, could not record,
# the take held no sound, this number left its messages for today.
MESSAGE_PROMPTS = ("msg.id.ask", "msg.id.skipped", "msg.record", "msg.failed", "msg.empty", "msg.limit")
# What a `prefs` node says besides its own prompt (the menu's closing words): the choice read
# out (its start, "then" between channels, each channel, each language, calls stopped), other
# categories have their own, saved, calls allowed again, WeChat not bound, no number to call; then
# the keys on offer (1, 2, 3 only to a bound caller, 4 to English or to Chinese, 5 stop or allow).
PREFS_PROMPTS = (
    *("prefs.current", "prefs.then", "prefs.ch.sms", "prefs.ch.voice", "prefs.ch.wechat"),
    *("prefs.lang.zh", "prefs.lang.en", "prefs.calls.stopped", "prefs.others", "prefs.saved"),
    *("prefs.calls.allowed", "prefs.wechat.unbound", "prefs.no_number"),
    *("prefs.menu.sms", "prefs.menu.voice", "prefs.menu.wechat", "prefs.menu.to_en", "prefs.menu.to_zh"),
    *("prefs.menu.stop_calls", "prefs.menu.allow_calls"),
)
PREFS_KEYS = frozenset("12345")  # a prefs node's own choices: not for its options


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    prompt: str = ""
    timeout_s: float = 6
    retries: int = 3
    on_fail: str = ""
    next: str = ""
    options: dict[str, str] = field(default_factory=dict)
    timeout_next: str = ""
    invalid_next: str = ""
    language: str = ""
    validate: str = ""
    max_digits: int = 1
    id_node: str = ""
    query: str = ""
    transaction: str = ""
    confirm: str = ""
    cancel_next: str = ""
    say: tuple[str, ...] = ()
    say_each: tuple[str, ...] = ()
    say_empty: tuple[str, ...] = ()
    say_already: tuple[str, ...] = ()
    queue: str = ""
    skill: str = ""  # transfer: the business line whose agents take the caller first (skills.names)
    silence_s: int = 5  # message: this long without a sound ends the recording (RECORD FILE s=)

    def targets(self) -> list[str]:
        named = [self.on_fail, self.next, self.timeout_next, self.invalid_next, self.id_node]
        return [t for t in named + [self.cancel_next, *self.options.values()] if t]

    def prompts(self) -> list[str]:
        plain = [p for p in (self.prompt, self.confirm) if p]
        if self.type == "message":
            plain += MESSAGE_PROMPTS
        if self.type == "prefs":
            plain += PREFS_PROMPTS
        says = self.say + self.say_each + self.say_empty + self.say_already
        return plain + [s[2:] for s in says if s.startswith("p:") and "{" not in s]


@dataclass(frozen=True)
class Menu:
    start: str
    agent_node: str
    identify_node: str
    fail_node: str
    unavailable_node: str
    nodes: dict[str, Node]

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def first_of_type(self, kind: str) -> str | None:
        return next((n.id for n in self.nodes.values() if n.type == kind), None)


REQUIRED = {
    "menu": ("prompt",),
    "play": ("prompt", "next"),
    "language": ("language", "next"),
    "collect": ("prompt", "validate", "next"),
    "identify": ("id_node",),
    "query": ("query", "say"),
    "transaction": ("transaction", "confirm", "say", "cancel_next"),
    "message": ("prompt", "confirm", "next"),
    "prefs": ("prompt",),
    "transfer": ("prompt", "queue"),
    "hangup": ("prompt",),
}
TUPLE_FIELDS = ("say", "say_each", "say_empty", "say_already")


def _node(node_id: str, raw: dict[str, Any], defaults: dict[str, Any], fail_node: str) -> Node:
    kind = raw.get("type")
    if kind not in REQUIRED:
        raise MenuError(f"node {node_id!r}: unknown type {kind!r} (one of {', '.join(REQUIRED)})")
    missing = [k for k in REQUIRED[kind] if not raw.get(k)]
    if missing:
        raise MenuError(f"node {node_id!r} ({kind}): missing {', '.join(missing)}")
    known = set(Node.__dataclass_fields__) - {"id"}
    unknown = set(raw) - known
    if unknown:
        raise MenuError(f"node {node_id!r}: unknown keys {sorted(unknown)}")
    values = {**defaults, **raw}
    values.setdefault("on_fail", fail_node)
    if kind in ("query", "transaction"):
        values.setdefault("next", "after")
    for name in TUPLE_FIELDS:
        values[name] = tuple(values.get(name, ()))
    values["options"] = {str(k): str(v) for k, v in values.get("options", {}).items()}
    return Node(id=node_id, **values)


def _check_node(node: Node, nodes: dict[str, Node]) -> None:
    for target in node.targets():
        if target not in nodes:
            raise MenuError(f"node {node.id!r}: target {target!r} does not exist")
    bad_keys = set(node.options) - MENU_KEYS
    if bad_keys:
        raise MenuError(f"node {node.id!r}: option keys {sorted(bad_keys)} not allowed (0 and * are reserved)")
    if node.type == "prefs" and set(node.options) & PREFS_KEYS:
        raise MenuError(f"node {node.id!r}: a prefs node's keys 1-5 are its choices, not options")
    if node.validate and node.validate not in VALIDATORS:
        raise MenuError(f"node {node.id!r}: unknown validator {node.validate!r}")
    if node.query and node.query not in QUERIES:
        raise MenuError(f"node {node.id!r}: unknown query {node.query!r}")
    if node.transaction and node.transaction not in TRANSACTIONS:
        raise MenuError(f"node {node.id!r}: unknown transaction {node.transaction!r}")
    for item in node.say + node.say_each + node.say_empty + node.say_already:
        kind, _, arg = item.partition(":")
        if kind not in SAY_KINDS or not arg:
            raise MenuError(f"node {node.id!r}: say item {item!r} is not kind:argument ({', '.join(SAY_KINDS)})")
    if node.type == "message" and (node.max_digits != 18 or not 1 <= node.silence_s <= 60):
        raise MenuError(f"node {node.id!r}: a message node reads an 18-digit ID number; silence_s 1..60")
    if not 1 <= node.retries <= 9 or not 0 < node.timeout_s <= 60:
        raise MenuError(f"node {node.id!r}: retries must be 1..9 and timeout_s 0..60")


def load_menu(path: Path = DEFAULT_MENU, catalogue: Catalogue | None = None) -> Menu:
    """Read and check a menu file; with a catalogue, also check every prompt exists in zh and en."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MenuError(f"{path}: {exc}") from exc
    try:
        top = {k: str(raw[k]) for k in ("start", "agent_node", "identify_node", "fail_node", "unavailable_node")}
    except KeyError as exc:
        raise MenuError(f"{path}: missing top-level key {exc.args[0]!r}") from None
    defaults = dict(raw.get("defaults", {}))
    nodes = {nid: _node(nid, dict(n), defaults, top["fail_node"]) for nid, n in raw.get("nodes", {}).items()}
    for name, target in top.items():
        if target not in nodes:
            raise MenuError(f"{path}: {name} {target!r} is not a node")
    if "after" not in nodes:
        raise MenuError(f"{path}: a node named 'after' (the menu after a query) is required")
    for node in nodes.values():
        _check_node(node, nodes)
        if catalogue is not None:
            for pid in node.prompts():
                if not (catalogue.has(pid, "zh") or catalogue.has(pid, "en")):
                    raise MenuError(f"node {node.id!r}: prompt {pid!r} is not in the catalogue")
    return Menu(nodes=nodes, **top)
