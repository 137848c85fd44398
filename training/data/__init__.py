"""Datasets, the si-pbe protocol splits, neighbour graphs and batching."""
