"""Migrations after 0037 must be safe to run beside live calls on PostgreSQL
(docs/operations.md, "Upgrading"): a lock a migration waits for is bounded by lock_timeout
(core.db.Store.migrate), but a lock it holds while it works is not, so these are refused:

- `op.create_index` without `postgresql_concurrently=True` inside
  `op.get_context().autocommit_block()`: a plain CREATE INDEX holds a SHARE lock, which
  blocks every INSERT into the table for as long as the build takes (PostgreSQL manual,
  CREATE INDEX, "Building Indexes Concurrently");
- `op.alter_column(..., type_=...)`: most type changes rewrite the table under an ACCESS
  EXCLUSIVE lock (ALTER TABLE, "Notes"); add a column and fill it in batches instead;
- raw `CREATE INDEX` in `op.execute` without CONCURRENTLY, for the same reason.

The migrations up to 0037 ran before a site could upgrade under load and are not checked.
"""

from __future__ import annotations

import ast

from core.db import MIGRATIONS

CHECKED_AFTER = "0037"


def problems(source: str) -> list[str]:
    """What makes a migration's text unsafe beside live calls, one line each."""
    tree = ast.parse(source)
    found: list[str] = []
    in_autocommit: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and "autocommit_block" in ast.unparse(node.items[0].context_expr):
            in_autocommit |= {id(inner) for inner in ast.walk(node)}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    # A table this migration creates is empty and nobody writes to it yet: its indexes are free.
    created = {_literal(n, 0, "table_name") for n in calls if n.func.attr == "create_table"}  # type: ignore[attr-defined]
    for node in calls:
        assert isinstance(node.func, ast.Attribute)
        name = node.func.attr
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if name == "create_index" and _literal(node, 1, "table_name") not in created:
            if keywords.get("postgresql_concurrently") != "True" or id(node) not in in_autocommit:
                found.append(f"line {node.lineno}: create_index without postgresql_concurrently in autocommit_block")
        elif name == "alter_column" and "type_" in keywords:
            found.append(f"line {node.lineno}: alter_column(type_=...) rewrites the table under its lock")
        elif name == "execute" and node.args:
            sql = " ".join(ast.unparse(node.args[0]).upper().split())
            if ("CREATE INDEX" in sql or "CREATE UNIQUE INDEX" in sql) and "CONCURRENTLY" not in sql:
                found.append(f"line {node.lineno}: CREATE INDEX without CONCURRENTLY")
    return found


def _literal(call: ast.Call, position: int, keyword: str) -> str | None:
    """A string argument given by position or keyword, if it is a literal."""
    given = call.args[position] if len(call.args) > position else None
    given = given or next((k.value for k in call.keywords if k.arg == keyword), None)
    return given.value if isinstance(given, ast.Constant) and isinstance(given.value, str) else None


def test_the_checker_finds_what_blocks_calls() -> None:
    unsafe = (
        "from alembic import op\nimport sqlalchemy as sa\n"
        "def upgrade():\n"
        "    op.create_index('ix_calls_agent', 'calls', ['agent'])\n"
        "    op.alter_column('calls', 'agent', type_=sa.String(80))\n"
        "    op.execute('CREATE INDEX ix_x ON calls (queue)')\n"
    )
    assert len(problems(unsafe)) == 3
    safe = (
        "from alembic import op\n"
        "def upgrade():\n"
        "    with op.get_context().autocommit_block():\n"
        "        op.create_index('ix_calls_agent', 'calls', ['agent'], postgresql_concurrently=True)\n"
        "    op.execute('CREATE INDEX CONCURRENTLY ix_x ON calls (queue)')\n"
    )
    assert problems(safe) == []
    new_table = (
        "from alembic import op\nimport sqlalchemy as sa\n"
        "def upgrade():\n"
        "    op.create_table('orders_12345', sa.Column('id', sa.Integer(), primary_key=True))\n"
        "    op.create_index('ix_orders_12345_id', 'orders_12345', ['id'])\n"
    )
    assert problems(new_table) == []  # a new, empty table: nothing waits on its index


def test_migrations_after_0037_are_safe_beside_live_calls() -> None:
    versions = sorted((MIGRATIONS / "versions").glob("*.py"))
    assert any(p.name.startswith(CHECKED_AFTER) for p in versions)  # the line is where it was drawn
    for path in (p for p in versions if p.name[:4] > CHECKED_AFTER):
        assert problems(path.read_text()) == [], path.name
