"""HTTP plumbing shared by the clients and the server that talk to other processes.

The ``remote-http`` RM client (:mod:`rmroute.reward_models.remote`), the ``openai-compatible`` judge
(:mod:`rmroute.suites.judges`) and ``rmroute rm serve`` (:mod:`rmroute.harness.serve`) share two rules:
a request is never redirected (a redirect turns a POST into a GET and could carry a bearer token to
another host), and a loopback address is reached directly, never through a proxy from the environment.
Only the standard library is used.
"""

from __future__ import annotations

import ipaddress
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: they would turn a POST into a GET and could carry the token elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_opener(host: str) -> urllib.request.OpenerDirector:
    """A urllib opener for requests to ``host``: redirects refused (:class:`NoRedirect`), and the
    environment's proxies bypassed when ``host`` is a loopback address."""
    proxies = urllib.request.ProxyHandler({}) if is_loopback(host) else urllib.request.ProxyHandler()
    return urllib.request.build_opener(proxies, NoRedirect())
