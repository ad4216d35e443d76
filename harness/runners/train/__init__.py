"""The train runner: policy training under a router (settings, plan, loop, runner)."""
