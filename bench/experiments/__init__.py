"""Measurements that explain a figure; run by hand, not by ``python -m bench``."""
