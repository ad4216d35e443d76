"""The train runner: policy training under a router.

``settings`` ← ``state`` ← ``loop`` / ``plan`` ← ``runner`` (imports run that way); ``dpo`` holds the
per-pair DPO maths, ``checkpoint`` the checked, atomic per-iteration checkpoints.
"""
