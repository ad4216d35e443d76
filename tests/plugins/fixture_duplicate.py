"""A fixture plugin that claims a name the built-ins already use."""

from rmroute import hookimpl
from rmroute.routers.simple import RandomRouter


@hookimpl
def register_routers(register):
    register("random", RandomRouter)
