"""The customer upload portal.

Links, customer email, the upload pipeline and its decoders, submissions.
"""
