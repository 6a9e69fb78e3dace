"""What can go wrong in casework, named by what went wrong."""

from __future__ import annotations

from core.destinations import DestinationRefused
from core.errors import HotlineError


class CasesError(HotlineError):
    """Base of the errors casework raises."""


class OrderNotFound(CasesError):
    """No such work order, or not one the asker may see (another department's): the two
    are told apart to nobody, so an id cannot be probed."""

    def __init__(self, order_id: int) -> None:
        super().__init__(f"no work order {order_id}")
        self.order_id = order_id


class OrderStateError(CasesError):
    """The order is not in a state that allows the step (answering a closed order)."""

    def __init__(self, order_id: int, state: str, action: str) -> None:
        super().__init__(f"work order {order_id} is {state}: it cannot be {action}")
        self.order_id = order_id
        self.state = state
        self.action = action


class UnknownDepartment(CasesError):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown department {name!r} (known: {', '.join(known)})")
        self.name = name


class UnknownCategory(CasesError):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown category {name!r} (known: {', '.join(known)})")
        self.name = name


class BadOrderInput(CasesError):
    """A field of a new order or an answer does not fit (empty, too long, unknown kind)."""


class NoReplyNumber(CasesError):
    """The answer should go by SMS or callback, but the order has no number to reach, or
    one the destination policy refuses (`refused`: calling or texting it abroad)."""

    def __init__(self, order_id: int, reply_via: str, refused: DestinationRefused | None = None) -> None:
        if refused is None:
            text = f"work order {order_id} has no caller number: it cannot be answered by {reply_via}"
        else:
            text = f"work order {order_id} cannot be answered by {reply_via}: {refused}"
        super().__init__(text)
        self.order_id = order_id
        self.reply_via = reply_via
        self.refused = refused


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


class RecordingNotFound(CasesError):
    """No recording with that id (or it was never one of an agent call)."""


class BadScore(CasesError):
    """A quality score that does not fit the form: an unknown or missing item, or points
    outside 0..the item's maximum."""


class Refused12345(CasesError):
    """A work order pushed by the 12345 hotline (cases.contract12345) is refused; nothing of
    it is stored. Messages never hold the caller's number or the order's text."""


class Hotline12345Off(Refused12345):
    """12345's orders are not taken here (hotline12345.enabled is false)."""


class BodyTooLarge(Refused12345):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the body has {size} bytes or more; at most {limit} (hotline12345.max_body_bytes)")


class NotSigned(Refused12345):
    """An unknown counterpart, a header missing or malformed, or a signature that does not
    match: the request is not known to come from a counterpart."""


class UnknownCounterpart(NotSigned):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown counterpart {name[:40]!r} (X-12345-Counterpart)")


class BadSignature(NotSigned):
    """X-12345-Signature missing, or not the HMAC of this request under the counterpart's key."""


class StaleRequest(Refused12345):
    """Signed, but its X-12345-Timestamp is outside hotline12345.max_skew_s of our clock."""


class ReplayedNonce(Refused12345):
    """Signed and fresh, but this counterpart's nonce was taken before: a replay."""


class BadOrder12345(Refused12345):
    """The body is not the documented JSON, or a field does not fit; `field` names it."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field


class OrderNoConflict(Refused12345):
    """12345 sent an order number taken before with different fields: not a resend."""

    def __init__(self, counterpart: str, order_no: str, order_id: int) -> None:
        super().__init__(
            f"order {order_no!r} of {counterpart} was taken before as work order {order_id} with other fields"
        )
        self.order_id = order_id


class Not12345Order(CasesError):
    """A step toward 12345 asked of an order it cannot apply to: 退单 and 延期 of an order
    12345 did not send, 转办 of one it did (it goes back by 退单)."""


class NotResendable(CasesError):
    """No message to 12345 has this id, or it is not a dead letter (`failed`): a pending or
    sent one is not sent again by hand."""

    def __init__(self, outbound_id: int, status: str | None) -> None:
        said = "no such message" if status is None else f"it is {status}, not failed"
        super().__init__(f"message {outbound_id} to 12345 cannot be sent again: {said}")
        self.outbound_id = outbound_id
        self.status = status
