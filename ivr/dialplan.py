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

EXTEN_HOTLINE: Final = "12333"

# FastAGI: agi://${HOTLINE_AGI_ADDR}/<script>
AGI_SCRIPT_IVR: Final = "ivr"
AGI_SCRIPT_SURVEY: Final = "survey"  # after an agent call: 1 satisfied, 2 basically, 3 dissatisfied
GLOBAL_AGI_ADDR: Final = "HOTLINE_AGI_ADDR"

# Channel variables the FastAGI session sets for the dialplan after it returns.
VAR_ACTION: Final = "HOTLINE_ACTION"  # "queue" or "hangup"
VAR_QUEUE: Final = "HOTLINE_QUEUE"  # queue name when VAR_ACTION is "queue"
VAR_CALL_ID: Final = "HOTLINE_CALL_ID"  # our call id, travels with the call to the agent

ACTION_QUEUE: Final = "queue"
ACTION_HANGUP: Final = "hangup"

# Variables the scripted caller reads (set through AMI Originate).
VAR_CALLER_DTMF: Final = "CALLER_DTMF"
VAR_CALLER_LEAD: Final = "CALLER_LEAD"  # seconds to wait after answer before the first digit
VAR_CALLER_TAIL: Final = "CALLER_TAIL"  # seconds to stay on the line after the last digit

# Queues
QUEUE_GENERAL: Final = "hotline-12333"
QUEUE_LABOUR: Final = "hotline-labour"

# Where built prompts live inside Asterisk's sounds directory: sounds/hotline/<lang>/<id>.wav
SOUNDS_SUBDIR: Final = "hotline"

# The apology played by the dialplan itself when the FastAGI server cannot be reached.
PROMPT_SYSTEM_APOLOGY: Final = "sys.unavailable"

# Variables the scripted agents (CTX_AGENTS) read: seconds ringing before answer, seconds talking.
VAR_AGENT_DELAY: Final = "AGENT_DELAY"
VAR_AGENT_TALK: Final = "AGENT_TALK"

# The single extension of CTX_CALLER_SCRIPT (CTX_QUEUE keeps the dialed number, EXTEN_HOTLINE).
EXTEN_START: Final = "s"
