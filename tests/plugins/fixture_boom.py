"""A fixture router that raises mid-stream, to check that a failing run is recorded and the rest go on."""

from rmroute import hookimpl
from rmroute.routers.simple import RandomRouter


class Boom(RandomRouter):
    def _update(self, X, arms, feedback):
        raise RuntimeError("boom: this router fails on its first update")


@hookimpl
def register_routers(register):
    register("boom", Boom, description="fails on purpose")
