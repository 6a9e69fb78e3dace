"""What can go wrong in casework, named by what went wrong."""

from __future__ import annotations

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
    """The answer should go by SMS or callback, but the order has no number to reach."""

    def __init__(self, order_id: int, reply_via: str) -> None:
        super().__init__(f"work order {order_id} has no caller number: it cannot be answered by {reply_via}")
        self.order_id = order_id
