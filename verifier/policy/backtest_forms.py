"""The backtest window on the settings page: which stored orders the draft is replayed over."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from wtforms import DateField, Form
from wtforms.validators import Optional

from verifier.policy.backtest import MAX_DAYS

DEFAULT_DAYS = 30


class BacktestWindowForm(Form):
    """Part of the settings form's POST (its CSRF token is checked by SettingsForm)."""

    backtest_first = DateField("Replay orders received from", validators=[Optional()])
    backtest_last = DateField("to", validators=[Optional()])

    def window(self, today: date) -> tuple[datetime, datetime]:
        """[start, end) in UTC: whole days, the end day included; 30 days to today by default."""
        last = self.backtest_last.data or today
        first = self.backtest_first.data or last - timedelta(days=DEFAULT_DAYS - 1)
        start = datetime.combine(first, time.min, tzinfo=UTC)
        return start, datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)

    def fill(self, today: date) -> None:
        if not self.backtest_last.data:
            self.backtest_last.data = today
        if not self.backtest_first.data:
            self.backtest_first.data = self.backtest_last.data - timedelta(days=DEFAULT_DAYS - 1)

    @property
    def max_days(self) -> int:
        return MAX_DAYS
