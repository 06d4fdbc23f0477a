"""Batching, device mesh, jitted scoring and decode loops, resumable result storage."""
