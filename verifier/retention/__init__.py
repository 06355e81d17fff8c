"""Retention.

The purge, erasure on request, legal holds, receipts, evidence bundles, the retention pages.
"""
