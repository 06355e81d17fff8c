"""The staff review queue: blueprint `review` under /review (templates in templates/review/)."""

from verifier.review_pages.views import bp

__all__ = ["bp"]
