"""Pipelines that build what runs consume: the RM pool, scores and their cache, the offline router, policies."""
