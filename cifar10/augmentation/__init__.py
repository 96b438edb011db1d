"""Offline augmentation: seeded keras-cv preprocessing layers (layers) and the rebalancing of a set (rebalance)."""
