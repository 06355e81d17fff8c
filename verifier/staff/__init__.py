"""Staff: accounts, passwords, sign-in and two-factor.

The staff pages (/staff) and the admin pages for staff accounts and the audit log (/admin).
"""
