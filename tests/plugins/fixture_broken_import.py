"""A fixture plugin that cannot be imported."""

raise ImportError("fixture plugin is deliberately broken")
