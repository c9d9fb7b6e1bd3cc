"""langsmith-bridge: rotate LangSmith service keys into the stores applications read.

A superseded key is deleted only after the applications reading it have acknowledged
the new one. See ``README.md`` for the tour and ``bridge.engine`` for the state machine.
"""

__version__ = "0.1.0"
