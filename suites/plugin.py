"""Built-in suites (data sources, benchmark builders, evaluation suites) register here."""

from __future__ import annotations

from harness.hookspecs import Register, hookimpl


@hookimpl
def register_suites(register: Register) -> None:
    """No suite is built yet: the data issue adds the sources and `rmroute-pairs-v1`."""
