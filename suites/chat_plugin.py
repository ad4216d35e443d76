"""Built-in evaluation suites and judges (registered through the same hooks as third-party plugins)."""

from __future__ import annotations

from harness.hookspecs import Register, hookimpl


@hookimpl
def register_suites(register: Register) -> None:
    # --- evaluation suites register below this line (kind="eval") ---
    pass


@hookimpl
def register_judges(register: Register) -> None:
    # --- judges register below this line ---
    pass
