"""Shared machinery: registry, config, losses, trainer, checkpoints, curriculum and data."""
