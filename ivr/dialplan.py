"""Names shared between the Python side and `dialplans/*.conf`, defined once.

A test (tests/unit/test_dialplan_constants.py) checks that the .conf files use exactly
these names, so a rename here that the dialplan does not follow fails at once.
"""

from typing import Final

# Contexts
CTX_ENTRY: Final = "hotline-12333"  # where callers to 12333 land
CTX_QUEUE: Final = "hotline-queue"  # transfer to an agent queue
CTX_CALLER_SCRIPT: Final = "hotline-caller-script"  # scripted test caller (answers, waits, DTMF)
CTX_AGENTS: Final = "hotline-agents"  # scripted agents (Local channels), used by issue 3
CTX_PHONES: Final = "hotline-phones"  # what agents' SIP phones and softphones may dial
CTX_PHONES_REFUSED: Final = "hotline-phones-refused"  # what phones dial that leads nowhere: 404
CTX_OUTBOUND: Final = "hotline-outbound"  # calls out (callbacks) through the outbound trunk
CTX_OUTBOUND_ANSWERED: Final = "hotline-outbound-answered"  # Dial's U() routine: the resident answered
CTX_NOTICE_DIAL: Final = "hotline-notice-dial"  # a notice call's dialing half: counted, then the trunk
CTX_NOTICE_PLAY: Final = "hotline-notice-play"  # its answered half: the FastAGI script `notice`
CTX_AGI: Final = "hotline-agi"  # a FastAGI script on the first server that answers
CTX_EDGE: Final = "hotline-edge"  # a cluster node: every call the SIP edge sends, by its source
CTX_RECORD_AGENT: Final = "hotline-record-agent"  # Queue()'s gosub on the answering agent: MixMonitor
CTX_MONITOR: Final = "hotline-monitor"  # a supervisor's phone answered: ChanSpy on the agent's call
CTX_CONFERENCE: Final = "hotline-conference"  # three-party calls: ConfBridge hotline-<conference id>
CTX_CONFERENCE_CODE: Final = "hotline-conference-code"  # an agent's *5 on a desk phone: the number keyed
# Each trunk's inbound context is this prefix + the trunk's name (rendered, not in extensions.conf).
TRUNK_CONTEXT_PREFIX: Final = "hotline-trunk-"
# The departments' numbers (sip.departments), rendered beside the trunks' contexts and
# included in CTX_PHONES: where a phone's blind transfer (REFER) lands.
DEPARTMENTS_CONTEXT: Final = "hotline-departments"

EXTEN_HOTLINE: Final = "12333"

# FastAGI: Gosub(hotline-agi,s,1(<script>[,<argument>])), on the servers of HOTLINE_AGI_SERVERS
AGI_SCRIPT_IVR: Final = "ivr"
AGI_SCRIPT_SURVEY: Final = "survey"  # after an agent call: 1 satisfied, 2 basically, 3 dissatisfied
AGI_SCRIPT_QUEUE_ENTRY: Final = "queue-entry"  # before Queue(): position, estimated wait, callback offer
AGI_SCRIPT_NOTICE: Final = "notice"  # a notice call answered: who calls, the notice, 1 again / 2 confirm / 9 no calls
GLOBAL_AGI_SERVERS: Final = "HOTLINE_AGI_SERVERS"
AGI_SERVER_SEPARATOR: Final = "&"

# A cluster's edge names where a call came from in this SIP header: a trunk (the prefix and
# its name; its context is TRUNK_CONTEXT_PREFIX + name) or an agent's phone.
SOURCE_HEADER: Final = "X-Hotline-Source"
SOURCE_TRUNK_PREFIX: Final = "trunk-"
SOURCE_PHONE: Final = "phone"
VAR_SOURCE: Final = "HOTLINE_SOURCE"

# Channel variables the FastAGI session sets for the dialplan after it returns.
VAR_ACTION: Final = "HOTLINE_ACTION"  # "queue" or "hangup"
VAR_QUEUE: Final = "HOTLINE_QUEUE"  # queue name when VAR_ACTION is "queue"
VAR_CALL_ID: Final = "HOTLINE_CALL_ID"  # our call id, travels with the call to the agent
# A call 12345 transferred here (三方转接): its work order's number, from the SIP header the
# trunk names (sip.trunks[].order_header), set by the trunk's context only when the value
# fits ORDER_12345_PATTERN and passed to the IVR's FastAGI script as its argument.
VAR_TRANSFER_ORDER: Final = "HOTLINE_TRANSFER_ORDER"
ORDER_12345_PATTERN: Final = "^[A-Za-z0-9_-]{1,40}$"

ACTION_QUEUE: Final = "queue"
ACTION_HANGUP: Final = "hangup"

# AMI UserEvent sent after Queue() returns, with header HotlineStatus: ${QUEUESTATUS}
# (TIMEOUT, LEAVEEMPTY, JOINEMPTY, FULL, CONTINUE, ...; app_queue docs).
USEREVENT_QUEUE_EXIT: Final = "HotlineQueueExit"

# Variables the scripted caller reads (set through AMI Originate).
VAR_CALLER_DTMF: Final = "CALLER_DTMF"
VAR_CALLER_LEAD: Final = "CALLER_LEAD"  # seconds to wait after answer before the first digit
VAR_CALLER_TAIL: Final = "CALLER_TAIL"  # seconds to stay on the line after the last digit
VAR_CALLER_SPEAK: Final = "CALLER_SPEAK"  # a sound the caller plays after CALLER_DTMF (speaking)
VAR_CALLER_DTMF_AFTER: Final = "CALLER_DTMF_AFTER"  # digits keyed after CALLER_SPEAK
# What a scripted caller "says" for a voice message: a built prompt of about 8 s. Playback
# is the only voice a Local caller has: one that sends no audio frames leaves RECORD FILE
# an empty take, however long it stays on the line.
CALLER_SPEECH: Final = "hotline/zh/per.files"

# Queues
QUEUE_GENERAL: Final = "hotline-12333"
QUEUE_LABOUR: Final = "hotline-labour"
# Skill queues are rendered from [skills] (ivr/skills.py): this prefix + the skill's name.
SKILL_QUEUE_PREFIX: Final = "hotline-skill-"

# Where built prompts live inside Asterisk's sounds directory: sounds/hotline/<lang>/<id>.wav
SOUNDS_SUBDIR: Final = "hotline"

# Played by app_queue itself (queues.conf periodic-announce) to callers waiting.
PROMPT_QUEUE_PERIODIC: Final = "queue.periodic"
# Music on hold for waiting callers: generated by `hotline prompts build` (sounds/hotline/moh/).
MOH_DIR: Final = "moh"

# The apology played by the dialplan itself when the FastAGI server cannot be reached.
PROMPT_SYSTEM_APOLOGY: Final = "sys.unavailable"

# Variables the scripted agents (CTX_AGENTS) read: seconds ringing before answer, seconds talking.
VAR_AGENT_DELAY: Final = "AGENT_DELAY"
VAR_AGENT_TALK: Final = "AGENT_TALK"

# The single extension of CTX_CALLER_SCRIPT (CTX_QUEUE keeps the dialed number, EXTEN_HOTLINE).
EXTEN_START: Final = "s"

# Calls out (CTX_OUTBOUND). Globals written by `hotline asterisk up` from [sip]: the outbound
# trunk's endpoint (empty: no trunk is marked outbound, every call out is refused), the
# limit of concurrent calls out, the hotline's number and name (the caller ID sent), and
# how long the resident's phone rings.
GLOBAL_OUTBOUND_TRUNK: Final = "HOTLINE_OUTBOUND_TRUNK"
GLOBAL_OUTBOUND_LIMIT: Final = "HOTLINE_OUTBOUND_LIMIT"
GLOBAL_OUTBOUND_RING_S: Final = "HOTLINE_OUTBOUND_RING_S"
GLOBAL_HOTLINE_NUMBER: Final = "HOTLINE_NUMBER"
GLOBAL_CALLER_ID_NAME: Final = "HOTLINE_CALLER_ID_NAME"
# Set by the platform's Originate: which callback this call is; CTX_OUTBOUND refuses a
# channel without it.
VAR_CALLBACK_ID: Final = "HOTLINE_CALLBACK_ID"
# Why the call out ended when it never reached Dial() (OUTCOME_LINES_FULL, OUTCOME_NO_TRUNK).
VAR_DIAL_RESULT: Final = "HOTLINE_DIAL_RESULT"
OUTCOME_LINES_FULL: Final = "LINESFULL"
OUTCOME_NO_TRUNK: Final = "NOTRUNK"
OUTCOME_REFUSED: Final = "REFUSED"  # the number is not one the destination policy allows
# Rendered by `hotline asterisk up` from [destinations] (ivr/destinations_dialplan.py): every
# call out first Gosubs here with the number it would dial, and dials only on RETURN_ALLOWED.
DESTINATIONS_CONTEXT: Final = "hotline-destinations"
RETURN_ALLOWED: Final = "allowed"
# The GROUP() category and name every call out is counted in (GROUP_COUNT, func_groupcount).
OUTBOUND_GROUP: Final = "outbound@hotline"
# AMI UserEvent sent when a call out ends (its `h` extension), with headers
# CallbackId: ${HOTLINE_CALLBACK_ID} and DialStatus: DIALSTATUS of Dial() (ANSWER, BUSY,
# NOANSWER, CONGESTION, CHANUNAVAIL, CANCEL, ...; app_dial docs) or HOTLINE_DIAL_RESULT.
USEREVENT_CALLBACK_DIAL: Final = "HotlineCallbackDial"

# Agent calls' recordings (CTX_RECORD_AGENT). The global: where Asterisk sees recordings.dir
# (recordings.asterisk_dir). The variable: the recording's path relative to it, chosen by the
# queue-entry script (calls/<date>/<uuid>.wav) and inherited by the agent's channel (`__`).
GLOBAL_RECORDINGS_DIR: Final = "HOTLINE_RECORDINGS_DIR"
VAR_RECORDING: Final = "HOTLINE_RECORDING"
# AMI UserEvent sent from the agent's channel once MixMonitor started, with headers
# CallId: ${HOTLINE_CALL_ID} and Recording: ${HOTLINE_RECORDING}.
USEREVENT_RECORDING: Final = "HotlineRecording"

# Notice calls (ivr/notice_calls.py). The dialler's AMI Originate of
# Local/<voice notice id>@CTX_NOTICE_DIAL sets these on the channel (a Local channel's
# variables are copied to its other half): which voice notice, the number in the carrier's
# form, and how long it rings. The dialing half counts itself in OUTBOUND_GROUP as a callback
# does; once the resident answers the other half runs CTX_NOTICE_PLAY.
VAR_NOTICE_CALL: Final = "HOTLINE_NOTICE_CALL"
VAR_NOTICE_NUMBER: Final = "HOTLINE_NOTICE_NUMBER"
VAR_NOTICE_RING_S: Final = "HOTLINE_NOTICE_RING_S"
# AMI UserEvent sent when a notice call's dialing half ends (its `h` extension), with headers
# NoticeCall: ${HOTLINE_NOTICE_CALL}, DialStatus: DIALSTATUS or HOTLINE_DIAL_RESULT, and
# HangupCause: the dialed channel's cause (Q.850: 1 unallocated number, 17 busy, ...).
USEREVENT_NOTICE_DIAL: Final = "HotlineNoticeDial"

# Supervisors' listen / whisper / barge (ivr/monitor.py). The AMI Originate of the
# supervisor's phone into CTX_MONITOR sets which session it is, the agent's channel and
# ChanSpy's options; the context raises the UserEvent HotlineMonitor with headers
# MonitorId: ${HOTLINE_MONITOR_ID} and State: start (answered, spying) or end (hung up).
VAR_MONITOR_ID: Final = "HOTLINE_MONITOR_ID"
VAR_SPY_CHANNEL: Final = "HOTLINE_SPY_CHANNEL"
VAR_SPY_OPTIONS: Final = "HOTLINE_SPY_OPTIONS"
USEREVENT_MONITOR: Final = "HotlineMonitor"

# Three-party calls (ivr/conference.py): each one's part in CTX_CONFERENCE (set by the
# platform's Originate for the member, by AMI Setvar for the caller and the agent), and the
# conference recording's path on the caller's channel. The ConfBridge is named
# CONFERENCE_PREFIX + the conference's id.
VAR_CONFERENCE_ROLE: Final = "HOTLINE_CONFERENCE_ROLE"
VAR_CONFERENCE_RECORDING: Final = "HOTLINE_CONFERENCE_RECORDING"
CONFERENCE_PREFIX: Final = "hotline-"
# The agent's feature code (features.conf): the number keyed into VAR_CONFERENCE_TARGET, sent
# in the UserEvent HotlineConference with header Target: ${HOTLINE_CONFERENCE_TARGET},
# raised from the agent's channel (its Channel header names it).
VAR_CONFERENCE_TARGET: Final = "HOTLINE_CONFERENCE_TARGET"
USEREVENT_CONFERENCE: Final = "HotlineConference"
FEATURE_CONFERENCE: Final = "hotline3way"
