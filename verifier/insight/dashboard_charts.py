"""The dashboard's charts: which numbers each one draws, and how it is described in words."""

from __future__ import annotations

from markupsafe import Markup

from verifier.insight import charts
from verifier.insight.stats import Dashboard


def hours_text(hours: float | None) -> str:
    """A duration for people: "25 min", "3.5 h", "2.1 days"; an em dash for no data."""
    if hours is None:
        return "—"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def dashboard_charts(data: Dashboard) -> dict[str, Markup]:
    """Every chart of one dashboard, keyed by the section that shows it."""
    labels = [row.day.strftime("%d %b") for row in data.rows]
    received = [row.received for row in data.rows]
    totals, queue, timing = data.totals, data.queue, data.timing
    outcomes, estimate, agreement = data.outcomes, data.estimate, data.agreement
    period = f"{data.period.first:%d %B %Y} to {data.period.last:%d %B %Y}"
    result = {
        "received": charts.bar_chart(
            "chart-received",
            "Orders received per day",
            f"{totals.received} orders from {period}; the busiest day had "
            f"{max(received, default=0)}.",
            labels,
            [charts.Series("orders", "series-c", received)],
        ),
        "flagged": charts.bar_chart(
            "chart-flagged",
            "Orders flagged for review per day, random versus rule",
            f"{totals.flagged_random} flagged at random and {totals.flagged_rule} forced by a "
            f"rule, from {period}.",
            labels,
            [
                charts.Series("random", "series-a", [r.flagged_random for r in data.rows]),
                charts.Series("rule", "series-b", [r.flagged_rule for r in data.rows]),
            ],
        ),
        "queue": charts.value_bars(
            "chart-queue",
            "Open cases now",
            f"{queue.in_review} waiting for a reviewer, {queue.awaiting_documents} waiting for "
            f"the customer's documents, {queue.resubmission_requested} waiting for new ones.",
            [
                ("In review", queue.in_review, str(queue.in_review)),
                ("Awaiting documents", queue.awaiting_documents, str(queue.awaiting_documents)),
                (
                    "Awaiting new documents",
                    queue.resubmission_requested,
                    str(queue.resubmission_requested),
                ),
            ],
            css_class="series-c",
        ),
        "timing": charts.value_bars(
            "chart-timing",
            "Time to a decision",
            f"Of {timing.decided} cases decided: from flag to decision, median "
            f"{hours_text(timing.flag_to_decision_median_h)} and 90th percentile "
            f"{hours_text(timing.flag_to_decision_p90_h)}.",
            [
                (
                    "Flag → decision, median",
                    timing.flag_to_decision_median_h,
                    hours_text(timing.flag_to_decision_median_h),
                ),
                (
                    "Flag → decision, 90th pct.",
                    timing.flag_to_decision_p90_h,
                    hours_text(timing.flag_to_decision_p90_h),
                ),
                (
                    "Documents → decision, median",
                    timing.documents_to_decision_median_h,
                    hours_text(timing.documents_to_decision_median_h),
                ),
                (
                    "Documents → decision, 90th pct.",
                    timing.documents_to_decision_p90_h,
                    hours_text(timing.documents_to_decision_p90_h),
                ),
            ],
            css_class="series-b",
        ),
        "outcomes": charts.share_bars(
            "chart-outcomes",
            "How cases ended",
            f"{outcomes.ended} cases ended from {period}.",
            [
                ("Approved", outcomes.share("approved")),
                ("Rejected", outcomes.share("rejected")),
                ("Declined by the customer", outcomes.share("declined")),
                ("Link expired", outcomes.share("expired")),
                ("Needed new documents", outcomes.share("resubmission")),
            ],
        ),
    }
    if estimate.enough:
        rejected, not_passed = estimate.rejected, estimate.not_passed
        # estimate.enough: the sample has MIN_SAMPLE ended cases, so both figures have numbers.
        assert rejected.share is not None and rejected.low is not None and rejected.high is not None
        assert not_passed.share is not None and not_passed.low is not None
        assert not_passed.high is not None
        result["estimate"] = charts.interval_chart(
            "chart-estimate",
            "Estimated share of all orders that would fail verification",
            f"From {estimate.random.ended} randomly sampled cases: rejected {rejected.low:.1%} "
            f"to {rejected.high:.1%}; did not pass {not_passed.low:.1%} to "
            f"{not_passed.high:.1%} (95 % intervals).",
            [
                ("Rejected", rejected.share, rejected.low, rejected.high),
                ("Did not pass", not_passed.share, not_passed.low, not_passed.high),
            ],
        )
    if agreement.per_reviewer:
        result["agreement"] = charts.share_bars(
            "chart-agreement",
            "Agreement of blind second reviews",
            f"{agreement.overall.agreed} of {agreement.overall.checked} checks agreed with the "
            "first decision.",
            [(a.label, a.rate) for a in [agreement.overall, *agreement.per_reviewer]],
            css_class="series-d",
        )
    return result
