"""The base of every configuration model: frozen, and strict about unknown keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """A configuration section: immutable once parsed, and a typo'd key is an error.

    ``defer_build``: a model's validator is built when it is first used, not when its
    class is defined. Importing the configuration then costs a few milliseconds instead of
    tens (a Lambda cold start imports it), and a run that parses only ``BridgeConfig``
    builds that one validator, its sections inlined, rather than one per section.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
