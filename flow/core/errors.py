"""The error every stage raises for bad input: the CLI prints its message and exits non-zero."""


class FlowError(Exception):
    """A user-facing error. The message names the file, field or layer at fault and what is allowed."""


class ToolMissing(FlowError):
    """A required external tool (a vendor HLS tool, a simulator) is not installed."""


class NotBitExact(FlowError):
    """Two executions that must agree on every bit do not (e.g. the traced RTL and the emulator): exit 1."""
