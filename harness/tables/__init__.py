"""Score tables: published per-item scores of real RMs and judges as an RM pool (see format.py)."""
