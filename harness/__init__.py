"""rmroute's host: plugin manager and hook specs, core types, configs, CLI, runners, results."""

from rmroute.harness.determinism import pin_environment

pin_environment()  # before numpy or torch is imported: one CPU code path on every machine (see the module)

from rmroute.harness.core.hookspecs import hookimpl  # noqa: E402

__all__ = ["hookimpl"]
__version__ = "0.1.0"
