"""The fraud estimate: the Wilson interval, and which cases the estimate may count."""

import random
from datetime import timedelta

import pytest

from tests.stats_helpers import NOW, add_order
from verifier.core.sampling import RULE_AMOUNT, RULE_COUNTRY
from verifier.insight.estimate import (
    Stratum,
    estimate_failure_share,
    weighted_share,
    wilson_interval,
)
from verifier.models import APPROVED, DECLINED, EXPIRED, IN_REVIEW, REJECTED


# Published values: Newcombe (1998), "Two-sided confidence intervals for the single
# proportion", Statistics in Medicine 17:857-872, method 3 (score interval without continuity
# correction), plus the textbook cases 0/10, 5/10 and 10/10.
@pytest.mark.parametrize(
    ("failures", "n", "low", "high"),
    [
        (0, 10, 0.0000, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0000),
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_published_values(failures, n, low, high):
    got_low, got_high = wilson_interval(failures, n)
    assert (round(got_low, 4), round(got_high, 4)) == (low, high)


def test_wilson_interval_is_exact_at_the_edges_and_refuses_nonsense():
    assert wilson_interval(0, 1)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0
    for failures, n in [(0, 0), (3, 2), (-1, 5)]:
        with pytest.raises(ValueError):
            wilson_interval(failures, n)


def _seed_random_sample(session, statuses, *, start=NOW - timedelta(days=10)):
    for i, status in enumerate(statuses):
        add_order(session, at=start + timedelta(hours=i), reason="random", draw=100,
                  status=status, decided_at=start + timedelta(hours=i + 1))  # fmt: skip


def test_estimate_counts_only_the_random_sample(db_session):
    # 40 random cases: 30 approved, 5 rejected, 3 declined, 2 expired; 4 still open.
    _seed_random_sample(
        db_session,
        [APPROVED] * 30 + [REJECTED] * 5 + [DECLINED] * 3 + [EXPIRED] * 2 + [IN_REVIEW] * 4,
    )
    # Rule-forced cases whose draw was above the rate: biased, never in the estimate.
    for _ in range(12):
        add_order(db_session, at=NOW - timedelta(days=5), reason=RULE_AMOUNT, draw=7_000,
                  status=REJECTED, decided_at=NOW - timedelta(days=4))  # fmt: skip
    for _ in range(3):
        add_order(db_session, at=NOW - timedelta(days=5), reason=RULE_COUNTRY, draw=7_000,
                  status=APPROVED, decided_at=NOW - timedelta(days=4))  # fmt: skip
    # A rule-forced order whose draw fell under the rate was also drawn at random: it counts.
    add_order(db_session, at=NOW - timedelta(days=5), reason=RULE_AMOUNT, draw=499,
              status=REJECTED, decided_at=NOW - timedelta(days=4))  # fmt: skip
    # Not flagged, and flagged outside the period: neither is in the sample.
    for _ in range(50):
        add_order(db_session, at=NOW - timedelta(days=3))
    add_order(db_session, at=NOW - timedelta(days=40), reason="random", draw=1, status=REJECTED,
              decided_at=NOW - timedelta(days=39))  # fmt: skip
    db_session.commit()

    estimate = estimate_failure_share(db_session, start=NOW - timedelta(days=30), end=NOW)

    assert estimate.orders == 44 + 12 + 3 + 1 + 50
    assert (estimate.random.approved, estimate.random.rejected) == (30, 6)
    assert (estimate.random.declined, estimate.random.expired) == (3, 2)
    assert estimate.random.still_open == 4
    assert estimate.random.ended == 41
    assert (estimate.rule_only.ended, estimate.rule_only.rejected) == (15, 12)
    assert estimate.enough
    assert (estimate.rejected.count, estimate.rejected.n) == (6, 41)
    assert estimate.rejected.share == pytest.approx(6 / 41)
    assert (estimate.rejected.low, estimate.rejected.high) == wilson_interval(6, 41)
    assert (estimate.not_passed.count, estimate.not_passed.n) == (11, 41)
    assert (estimate.not_passed.low, estimate.not_passed.high) == wilson_interval(11, 41)
    # Fewer than 30 rule-only cases ended: no figure for them either.
    assert estimate.rule_rejected.share is None
    assert not estimate.mixed_rates


def test_estimate_says_nothing_below_thirty_ended_random_cases(db_session):
    _seed_random_sample(db_session, [APPROVED] * 27 + [REJECTED] * 2 + [IN_REVIEW] * 10)
    db_session.commit()
    estimate = estimate_failure_share(db_session, start=NOW - timedelta(days=30), end=NOW)
    assert estimate.random.ended == 29
    assert not estimate.enough
    assert estimate.rejected.share is None and estimate.rejected.low is None
    assert estimate.not_passed.high is None

    add_order(db_session, at=NOW - timedelta(days=1), reason="random", draw=3, status=APPROVED,
              decided_at=NOW - timedelta(hours=2))  # fmt: skip
    db_session.commit()
    estimate = estimate_failure_share(db_session, start=NOW - timedelta(days=30), end=NOW)
    assert estimate.enough
    assert estimate.rejected.share == pytest.approx(2 / 30)


def test_estimate_notes_repeat_exemptions_and_rate_changes(db_session):
    _seed_random_sample(db_session, [APPROVED] * 3)
    add_order(db_session, at=NOW - timedelta(days=2), reason="repeat_customer_exempt", draw=10)
    add_order(db_session, at=NOW - timedelta(days=2), rate_bp=1_000)
    db_session.commit()
    estimate = estimate_failure_share(db_session, start=NOW - timedelta(days=30), end=NOW)
    assert estimate.repeat_exempt == 1
    assert estimate.random.ended == 3
    assert estimate.rates_bp == (500, 1_000)
    assert estimate.mixed_rates


def _population(session, *, start, rate_bp, orders, sampled_failures, sampled):
    """`orders` orders drawn at `rate_bp`; the first `sampled` were drawn (draw under the rate),
    `sampled_failures` of them rejected; the others were not selected."""
    for i in range(orders):
        at = start + timedelta(minutes=i)
        if i < sampled:
            status = REJECTED if i < sampled_failures else APPROVED
            add_order(session, at=at, reason="random", draw=i % rate_bp, rate_bp=rate_bp,
                      status=status, decided_at=at + timedelta(hours=1))  # fmt: skip
        else:
            add_order(session, at=at, draw=rate_bp + i % (10_000 - rate_bp), rate_bp=rate_bp)


def test_a_rate_change_mid_period_no_longer_biases_the_estimate(db_session):
    # The rate goes from 10 % to 50 % halfway through. In the first half 2 % of orders fail,
    # in the second 30 %; each sample holds exactly its half's share of failures, so the
    # true share over all 1,200 orders is (20 + 60) / 1,200 = 6.67 %.
    _population(db_session, start=NOW - timedelta(days=20), rate_bp=1_000, orders=1_000,
                sampled=100, sampled_failures=2)  # fmt: skip
    _population(db_session, start=NOW - timedelta(days=5), rate_bp=5_000, orders=200,
                sampled=100, sampled_failures=30)  # fmt: skip
    db_session.commit()
    estimate = estimate_failure_share(db_session, start=NOW - timedelta(days=30), end=NOW)
    assert estimate.orders == 1_200
    assert estimate.weighted and estimate.sample_rates_bp == (1_000, 5_000)
    # Counting every sampled order the same would say 32 / 200 = 16 %.
    assert (estimate.rejected.count, estimate.rejected.n) == (32, 200)
    assert estimate.rejected.share == pytest.approx(80 / 1_200)
    assert estimate.rejected.low < 80 / 1_200 < estimate.rejected.high
    assert estimate.not_passed.share == pytest.approx(80 / 1_200)


def test_one_rate_gives_the_plain_share():
    share, n_eff = weighted_share([Stratum(500, 40, 4)])
    assert share == pytest.approx(0.1) and n_eff == pytest.approx(40)
    assert weighted_share([Stratum(500, 0, 0)]) is None
    with pytest.raises(ValueError):
        weighted_share([Stratum(0, 3, 1)])


def test_the_weighted_share_is_unbiased_over_repeated_draws():
    # A population whose failure rate differs between the two halves of the period, sampled
    # at 10 % then 50 %: averaged over many independent draws, the weighted estimate finds
    # the true share; the unweighted one is far off.
    rng = random.Random(20261202)
    halves = [(1_000, 2_000, 0.02), (5_000, 400, 0.30)]  # rate_bp, orders, failure share
    population = [[rng.random() < p for _ in range(n)] for _, n, p in halves]
    truth = sum(map(sum, population)) / sum(n for _, n, _ in halves)
    weighted, plain = [], []
    for _ in range(400):
        strata = []
        for (rate_bp, _, _), fails in zip(halves, population, strict=True):
            drawn = [f for f in fails if rng.randrange(10_000) < rate_bp]
            strata.append(Stratum(rate_bp, len(drawn), sum(drawn)))
        share = weighted_share(strata)
        assert share is not None
        weighted.append(share[0])
        plain.append(sum(s.failures for s in strata) / sum(s.ended for s in strata))
    mean = sum(weighted) / len(weighted)
    assert abs(mean - truth) < 0.004  # the standard error of this mean is about 0.0006
    assert sum(plain) / len(plain) - truth > 0.05
