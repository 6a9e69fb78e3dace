"""Errors raised by the SMS room, named by what went wrong."""

from core.errors import HotlineError


class BatchError(HotlineError):
    """A batch file cannot be read as asked, or the batch named does not exist."""


class DispatcherFault(HotlineError):
    """A part of the dispatcher (its group commit, its batch intake) stopped on a fault."""


class WeChatOAuthRefused(HotlineError):
    """WeChat would not exchange a web-authorisation code for an openid (40029 invalid code,
    40163 code already used...): the resident opens the page from the menu again."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat refused the authorisation code (errcode {errcode}: {errmsg[:80]})")
        self.errcode = errcode


class WeChatUnreachable(HotlineError):
    """WeChat's API did not answer, or not with its documented JSON: try again shortly."""


class BadPush(HotlineError):
    """An event push from WeChat that is not the documented XML."""


class BindRefused(HotlineError):
    """A step of binding a WeChat account to an ID number cannot be done (the page says why)."""


class BadIdNumber(BindRefused):
    """The ID number entered is not a well-formed GB 11643 number."""


class TooManyCodes(BindRefused):
    """More codes asked for in the last hour than one WeChat account or one ID number may."""


class CodesForAllSpent(TooManyCodes):
    """More codes asked for in the last hour across the hotline than `wechat.bind_codes_per_hour`."""


class NoCodePending(BindRefused):
    """No code is waiting for this WeChat account: it expired, ran out of tries, or none was
    asked for. A new one is needed."""


class WrongCode(BindRefused):
    """The code entered is not the one sent; `tries_left` more may be made."""

    def __init__(self, tries_left: int) -> None:
        super().__init__(f"wrong code, {tries_left} tries left")
        self.tries_left = tries_left


class BadCmppPdu(HotlineError):
    """Bytes that do not parse as the CMPP PDU they claim to be: shorter than the header,
    a Total_Length that is not the PDU's, a body the command's layout does not fit."""


class UnknownCmppCommand(BadCmppPdu):
    """A CMPP Command_Id that is none of those this codec speaks."""

    def __init__(self, command_id: int) -> None:
        super().__init__(f"unknown CMPP Command_Id 0x{command_id:08X}")
        self.command_id = command_id


class CmppFieldTooLong(HotlineError):
    """A value to encode does not fit its fixed-width CMPP field (or a count its octet)."""


class CmppConnectRefused(HotlineError):
    """The gateway answered CMPP_CONNECT with a non-zero Status (3: bad authenticator,
    4: a version it does not speak)."""

    def __init__(self, status: int, meaning: str) -> None:
        super().__init__(f"the gateway refused CMPP_CONNECT: Status {status} ({meaning})")
        self.status = status


class CmppGatewayNotAuthentic(HotlineError):
    """CMPP_CONNECT_RESP's AuthenticatorISMG is not the one our shared secret gives: the
    peer is not the gateway we share the secret with (or reads the spec differently)."""


class CmppTextTooLong(HotlineError):
    """A text that needs more than 255 parts: Pk_total is one octet."""


class CmppLinkGone(HotlineError):
    """The CMPP link chosen for a PDU was down before it went out: nothing was sent."""
