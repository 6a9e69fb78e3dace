"""knowledge base: articles, their versions, their use on calls, and Chinese full-text search

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 05:00:00

Search must work for Chinese, which has no spaces between words, without a word splitter:
trigrams. On SQLite an FTS5 table with the trigram tokenizer (SQLite >= 3.34; FTS5 docs,
"The Trigram Tokenizer"), an external-content table over kb_articles kept in step by
triggers, so any write to kb_articles (the application's, or a hand-made UPDATE) updates
the index in the same transaction. On PostgreSQL the pg_trgm extension (trusted since
PostgreSQL 13: the database's owner may create it) with GIN indexes on title and body,
which serve `ILIKE '%...%'` (pg_trgm docs, "Index Support").

These objects are outside core/models.py (`KB_SEARCH_OBJECTS`). A later migration that
rebuilds kb_articles on SQLite (a batch alteration copies the table) drops the triggers
with it: recreate them there and run `INSERT INTO kb_fts(kb_fts) VALUES('rebuild')`.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE kb_fts USING fts5(title, body, content='kb_articles', content_rowid='id',"
    " tokenize='trigram')",
    "CREATE TRIGGER kb_fts_insert AFTER INSERT ON kb_articles BEGIN"
    " INSERT INTO kb_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER kb_fts_delete AFTER DELETE ON kb_articles BEGIN"
    " INSERT INTO kb_fts(kb_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER kb_fts_update AFTER UPDATE OF title, body ON kb_articles BEGIN"
    " INSERT INTO kb_fts(kb_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);"
    " INSERT INTO kb_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
)
POSTGRESQL_SEARCH = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_kb_articles_title_trgm ON kb_articles USING gin (title gin_trgm_ops)",
    "CREATE INDEX ix_kb_articles_body_trgm ON kb_articles USING gin (body gin_trgm_ops)",
)


def upgrade() -> None:
    op.create_table(
        'kb_articles',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('category', sa.String(length=40), nullable=False),
        sa.Column('tags', sa.String(length=200), server_default='', nullable=False),
        sa.Column('effective_date', sa.Date(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('sample', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.Column('updated_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_articles')),
        sa.UniqueConstraint('title', name=op.f('uq_kb_articles_title')),
    )
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.create_index('ix_kb_articles_status_effective', ['status', 'effective_date'], unique=False)
    op.create_table(
        'kb_article_versions',
        sa.Column('article_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('category', sa.String(length=40), nullable=False),
        sa.Column('tags', sa.String(length=200), nullable=False),
        sa.Column('effective_date', sa.Date(), nullable=False),
        sa.Column('edited_by', sa.String(length=64), nullable=False),
        sa.Column('at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['article_id'], ['kb_articles.id'],
            name=op.f('fk_kb_article_versions_article_id_kb_articles'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('article_id', 'version', name=op.f('pk_kb_article_versions')),
    )
    op.create_table(
        'kb_uses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.String(length=36), nullable=False),
        sa.Column('article_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('agent', sa.String(length=32), nullable=False),
        sa.Column('at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['article_id'], ['kb_articles.id'], name=op.f('fk_kb_uses_article_id_kb_articles'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_uses')),
        sa.UniqueConstraint('call_id', 'article_id', name=op.f('uq_kb_uses_call_id')),
    )
    with op.batch_alter_table('kb_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_uses_article_id'), ['article_id'], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_SEARCH if dialect == 'sqlite' else POSTGRESQL_SEARCH:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for name in ('kb_fts_update', 'kb_fts_delete', 'kb_fts_insert'):
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
        op.execute('DROP TABLE IF EXISTS kb_fts')
    else:
        op.execute('DROP INDEX IF EXISTS ix_kb_articles_body_trgm')
        op.execute('DROP INDEX IF EXISTS ix_kb_articles_title_trgm')
    with op.batch_alter_table('kb_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_uses_article_id'))
    op.drop_table('kb_uses')
    op.drop_table('kb_article_versions')
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.drop_index('ix_kb_articles_status_effective')
    op.drop_table('kb_articles')
