"""What can go wrong in casework, named by what went wrong."""

from __future__ import annotations


class CasesError(Exception):
    """Base of the errors casework raises."""


class KbError(CasesError):
    """Something asked of the knowledge base cannot be done."""


class BadQuery(KbError):
    """A search text that is empty or longer than the knowledge base accepts."""


class BadArticle(KbError):
    """An article's fields are missing or wrong (no title, a date that is no date, too long)."""


class ArticleNotFound(KbError):
    """No article has this id (or an agent asked for one that is not published)."""


class EditConflict(KbError):
    """The article changed since the editor opened it: their version is not the current one."""


class NotAgentsCall(KbError):
    """An agent marked an article used on a call that is not their current or last call."""


class ImportFailed(KbError):
    """A file to import has errors; nothing of it was imported. `errors` name the lines."""

    def __init__(self, path: str, errors: list[str]) -> None:
        shown = "; ".join(errors[:10]) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")
        super().__init__(f"{path}: nothing imported: {shown}")
        self.errors = errors
