"""Durations in progress and ETA lines: ``H:MM:SS``, hours unbounded, seconds rounded, never negative."""

import pytest

from csdn._progress import format_seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00:00"),
        (-5, "0:00:00"),
        (59.4, "0:00:59"),
        (59.6, "0:01:00"),
        (3599, "0:59:59"),
        (3600, "1:00:00"),  # an hour or more: the hour field starts counting, minutes and seconds restart
        (3661, "1:01:01"),
        (7322.2, "2:02:02"),
        (86399, "23:59:59"),
        (90061, "25:01:01"),  # no day field: hours keep counting
    ],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
