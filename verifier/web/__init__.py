"""The web layer every area's pages stand on.

Request class, security headers, error pages, auth guards, rate limits and the landing page.
"""
