"""The SVG chart builder: well-formed, described, escaped, scaled."""

import xml.etree.ElementTree as ET

import pytest

from verifier.insight.charts import Series, bar_chart, interval_chart, nice_ceiling, share_bars

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (0.7, 1), (3, 5), (7, 10), (12, 20), (23, 25), (180, 200)]
)
def test_nice_ceiling(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_bar_chart_stacks_series_and_escapes_text():
    svg = bar_chart(
        "c1", "Flags <per> day", "A & B", ["Mon", "Tue"],
        [Series("random", "series-a", [2, 0]), Series("<rule>", "series-b", [1, 3])],
    )  # fmt: skip
    root = ET.fromstring(str(svg))
    assert root.find(f"{SVG}title").text == "Flags <per> day"
    assert root.find(f"{SVG}desc").text == "A & B"
    bars = root.findall(f"{SVG}rect[@class]")
    bars = [b for b in bars if "bar" in b.get("class").split()]
    assert len(bars) == 3  # a zero value draws no bar
    assert [b.find(f"{SVG}title").text for b in bars] == [
        "Mon: 2 random", "Mon: 1 <rule>", "Tue: 3 <rule>"]  # fmt: skip
    heights = [float(b.get("height")) for b in bars]
    # The axis tops out at 5 (nice ceiling of the tallest stack, 3): 3/5 of the plot height.
    assert heights[0] + heights[1] == pytest.approx(heights[2])
    assert "style=" not in str(svg)


def test_bar_chart_needs_one_value_per_label():
    with pytest.raises(ValueError):
        bar_chart("c", "t", "d", ["a", "b"], [Series("s", "series-a", [1])])


def test_share_bars_and_intervals_are_labelled_with_their_numbers():
    root = ET.fromstring(str(share_bars("c2", "t", "d", [("Approved", 0.5), ("Rejected", None)])))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "50.0 %" in texts and "no data" in texts
    root = ET.fromstring(str(interval_chart("c3", "t", "d", [("Rejected", 0.1, 0.05, 0.2)])))
    group = root.find(f"{SVG}g")
    assert group.find(f"{SVG}title").text == ("Rejected: 10.0 % (95 % interval 5.0 % to 20.0 %)")
