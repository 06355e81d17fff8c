"""Intake.

Orders from the shop (JSON API and CSV), payload validation, the sampling decision, API keys.
"""
