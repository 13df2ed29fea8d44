"""Bookkeeping of odd and broken input: what was fixed, dropped or skipped."""

import dataclasses
import logging

logger = logging.getLogger("cfsam_keras.data")

#: Actions taken on a problem, from the mildest.
FIXED = "fixed"  # readable but odd: converted or clipped, nothing lost
DROPPED = "dropped"  # one box left out (it covers no pixels)
SKIPPED = "skipped"  # a whole record (image or annotation) left out

_NAMES_IN_SUMMARY = 3


class BadInputError(ValueError):
    """Raised in ``strict=True`` mode for a record that would be skipped or dropped."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One odd or broken input: the file, what is wrong, what was done."""

    file: str
    reason: str
    action: str


class InputReport:
    """Counts and names the odd or broken inputs met while reading a source.

    Args:
        source_name: how the source is named in messages.
        strict: when True, `add` raises `BadInputError` for anything that
            would be skipped or dropped (fixes are still applied silently
            into the report).

    Example:
    >>> report = InputReport("coco(instances_val.json)")
    >>> report.add("a.jpg", "truncated JPEG", SKIPPED)
    >>> report.summary()
    'coco(instances_val.json): skipped 1 record (a.jpg: truncated JPEG)'
    """

    def __init__(self, source_name, strict=False):
        self.source_name = source_name
        self.strict = bool(strict)
        self.problems = []

    def add(self, file, reason, action):
        if action not in (FIXED, DROPPED, SKIPPED):
            raise ValueError(f"Unknown action {action!r}.")
        if self.strict and action != FIXED:
            raise BadInputError(f"{file}: {reason} ({self.source_name}, strict=True).")
        self.problems.append(Problem(str(file), reason, action))

    def extend(self, other):
        self.problems.extend(other.problems)

    def _of(self, action):
        return [p for p in self.problems if p.action == action]

    @property
    def skipped(self):
        """Problems whose record was left out."""
        return self._of(SKIPPED)

    @property
    def dropped(self):
        """Problems where one box was left out."""
        return self._of(DROPPED)

    @property
    def fixed(self):
        """Problems repaired without losing anything."""
        return self._of(FIXED)

    def __bool__(self):
        return bool(self.problems)

    def summary(self):
        """One line: counts per action and the first few files with reasons."""
        parts = []
        for action, noun in ((SKIPPED, "record"), (DROPPED, "box"), (FIXED, "input")):
            items = self._of(action)
            if not items:
                continue
            named = "; ".join(f"{p.file}: {p.reason}" for p in items[:_NAMES_IN_SUMMARY])
            more = (
                f"; and {len(items) - _NAMES_IN_SUMMARY} more"
                if len(items) > _NAMES_IN_SUMMARY
                else ""
            )
            plural = "es" if noun == "box" and len(items) != 1 else ("s" if len(items) != 1 else "")
            parts.append(f"{action} {len(items)} {noun}{plural} ({named}{more})")
        if not parts:
            return f"{self.source_name}: no problems"
        return f"{self.source_name}: " + ", ".join(parts)

    def log(self):
        """Logs `summary` as one warning line when there is anything to report."""
        if self.problems:
            logger.warning("%s", self.summary())
