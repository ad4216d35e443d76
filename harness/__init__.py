"""rmroute's host: plugin manager and hook specs, core types, configs, CLI, runners, results."""

from harness.hookspecs import hookimpl

__all__ = ["hookimpl"]
__version__ = "0.1.0"
