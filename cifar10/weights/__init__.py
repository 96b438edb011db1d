"""Pretrained backbone weights as a tracked, checksummed input: fetching, verifying, the manifest."""
