"""The host's core: hook specs, plugin registry, types, errors, config models, the author kit."""
