"""Insight: order and case statistics, the fraud estimate, charts and the admin dashboard."""
