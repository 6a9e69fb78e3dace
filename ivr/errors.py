"""Errors raised by the IVR room, named by what went wrong."""

# Named by what went wrong (STYLE.md 5, as httpcore's ReadTimeout), not by an Error suffix.

from core.errors import HotlineError


class AsteriskError(HotlineError):
    """The local Asterisk could not be provisioned, configured, started or stopped."""


class AsteriskNotInstalled(AsteriskError):
    """A tool needed to build the Asterisk root (debootstrap, chroot, mount) is missing."""


class AsteriskProvisionFailed(AsteriskError):
    """debootstrap failed to build the Asterisk root."""


class AsteriskConfigError(AsteriskError):
    """A setting cannot be written into Asterisk's configuration (e.g. a bad character)."""


class AsteriskNotReady(AsteriskError):
    """Asterisk was started but its AMI did not accept our login in time, or it exited."""


class AsteriskCommandFailed(AsteriskError):
    """A CLI command sent with `asterisk -rx` failed."""


class AmiError(HotlineError):
    """The Asterisk Manager Interface refused or failed an action."""


class AmiUnavailable(AmiError):
    """No AMI answers at the configured host and port."""


class AmiLoginRefused(AmiError):
    """AMI refused our user and secret (or the ACL refused our address)."""


class OriginateFailed(AmiError):
    """AMI Originate was refused or the originated channel never answered."""


class CallTimeout(AmiError):
    """A call did not reach the awaited state (e.g. hung up) within the time allowed."""


class InvalidDtmf(AmiError):
    """A scripted caller's digit string holds characters SendDTMF does not accept."""


class CatalogueError(HotlineError):
    """The prompt catalogue is missing a prompt or a language."""


class MenuError(HotlineError):
    """The menu file is invalid: unknown node, missing target, bad key."""


class AgiError(HotlineError):
    """Asterisk answered an AGI command with an error (510, 520, malformed reply) or not at all."""


class CallerHungUp(HotlineError):  # names the event, which is not a failure
    """The caller hung up: inline HANGUP, 511 on a dead channel, or the socket closed."""


class AsteriskGone(CallerHungUp):
    """The FastAGI connection closed before Asterisk said the caller hung up: Asterisk (a
    cluster node) went away with the call. The call is over, but the caller did not end it."""


class PromptBuildError(HotlineError):
    """A prompt's audio could not be synthesised or converted."""


class AsteriskLogError(HotlineError):
    """A queue_log line or Master.csv row is not in the format Asterisk writes."""


class AgentError(HotlineError):
    """An agent action was refused: unknown or logged-out agent, or Asterisk said no."""


class CallbackCallError(HotlineError):
    """A callback's call out cannot be placed (no outbound trunk, one already under way)."""


class NoOutboundTrunk(CallbackCallError):
    """No trunk is marked `outbound = true`: calls out have no way out."""


class CallbackCallInProgress(CallbackCallError):
    """The agent already has a callback's call out under way (one at a time)."""


class MessageNotSaved(HotlineError):
    """A voice message was recorded but its row could not be stored (the store is down)."""


class BansUnavailable(AsteriskError):
    """The SIP bans cannot work on this machine (no fail2ban or nftables, or the kernel
    refuses nftables rules), or our fail2ban server does not answer."""


class ClusterRefused(AsteriskError):
    """A cluster cannot be set up with these settings or on this machine (SQLite, no Kamailio)."""


class EdgeNotReady(AsteriskError):
    """The SIP edge (Kamailio) refused its configuration, exited, or did not answer in time."""


class MonitorRefused(HotlineError):
    """A supervisor's listen / whisper / barge cannot start: who asks, which agent or which
    phone does not allow it (the message says which)."""
