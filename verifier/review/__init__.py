"""Review.

Claims and leases, the queue, decisions, bulk actions, document viewing and erasure, quality
checks.
"""
