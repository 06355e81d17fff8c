"""The demo shop that `verifier demo` seeds.

Orders at every stage, staff logins and a working customer link.
"""
