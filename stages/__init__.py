"""CIFAR-10 imbalance study as a DVC pipeline: one module per stage plus shared helpers."""
