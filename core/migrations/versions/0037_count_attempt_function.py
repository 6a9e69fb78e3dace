"""identification: on PostgreSQL, an attempt counted in one call of a function

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-07 17:30:00

core.identify counts an attempt before its PIN is checked: the call's ID numbers, the
calling number's budget, the ID number's own count, in that order, a refusal writing
nothing. From Python that is a savepoint and four statements, six round trips to the
server, in the group writer's transaction; under load most of a batch's commit was those
round trips (issue 23). `hotline_count_attempt` runs the same statements in the same order
in one round trip. Its inner block is the savepoint: a refusal raises inside it, which
rolls back the block's writes (PL/pgSQL manual, "Trapping Errors"), and the handler
returns what refused. SQLite runs in the process: it keeps the statements of
core.identify, which the store tests run on both databases against the same expectations.
"""

from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE FUNCTION hotline_count_attempt(
    p_call text, p_key text, p_ids_per_call integer,
    p_caller text, p_day date, p_limit integer,
    p_id text, p_max integer, p_until timestamptz, p_now timestamptz,
    OUT refused text, OUT counted integer, OUT lock_until timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    tried integer;
BEGIN
    BEGIN
        IF p_call IS NOT NULL THEN
            INSERT INTO call_identities (call_id, id_key, at) VALUES (p_call, p_key, p_now)
                ON CONFLICT DO NOTHING;
            SELECT count(*) INTO tried FROM call_identities WHERE call_id = p_call;
            IF tried > p_ids_per_call THEN
                refused := 'ids_per_call';
                RAISE EXCEPTION 'refused';
            END IF;
        END IF;
        INSERT INTO caller_failures AS b (caller, day, failures, updated_at)
            VALUES (p_caller, p_day, 1, p_now)
            ON CONFLICT (caller, day) DO UPDATE SET failures = b.failures + 1, updated_at = p_now
            WHERE b.failures < p_limit;
        IF NOT FOUND THEN
            refused := 'caller_budget';
            RAISE EXCEPTION 'refused';
        END IF;
        INSERT INTO pin_locks AS l (id_number, failures, locked_until, updated_at)
            VALUES (p_id, 1, CASE WHEN p_max <= 1 THEN p_until END, p_now)
            ON CONFLICT (id_number) DO UPDATE SET
                failures = CASE WHEN l.locked_until IS NOT NULL THEN 1 ELSE l.failures + 1 END,
                locked_until = CASE
                    WHEN p_max <= CASE WHEN l.locked_until IS NOT NULL THEN 1 ELSE l.failures + 1 END
                    THEN p_until END,
                updated_at = p_now
            WHERE l.locked_until IS NULL OR l.locked_until <= p_now
            RETURNING l.failures INTO counted;
        IF NOT FOUND THEN
            refused := 'locked';
            RAISE EXCEPTION 'refused';
        END IF;
    EXCEPTION WHEN raise_exception THEN
        -- The block's writes are rolled back; its variables keep their values. (The OUT
        -- parameters are named apart from every column: plpgsql.variable_conflict = error.)
        counted := NULL;
        IF refused = 'locked' THEN
            SELECT l.locked_until INTO lock_until FROM pin_locks AS l WHERE l.id_number = p_id;
        END IF;
    END;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION hotline_count_attempt(text, text, integer, text, date, integer, text, integer,"
            " timestamptz, timestamptz)"
        )
