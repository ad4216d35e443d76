"""A fixture plugin that registers one router and then raises: none of it may be kept."""

from rmroute import hookimpl
from rmroute.routers.simple import RandomRouter


@hookimpl
def register_routers(register):
    register("fixture-half-registered", RandomRouter)
    raise RuntimeError("hook exploded on purpose")
