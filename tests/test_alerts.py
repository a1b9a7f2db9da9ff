"""The alert state machine: minimum sample, hysteresis, escalation, cooldown, restore."""

from datetime import datetime, timedelta, timezone

from core.alerts import AlertBook, Check, Rule, decode_alert, encode_alert

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
COOLDOWN = timedelta(minutes=5)


def abandon(abandoned: int, contacts: int, min_live_answers: int = 30) -> Check:
    return Check(
        Rule.ABANDON_RATE,
        abandoned / contacts if contacts else None,
        0.02,
        0.03,
        clear=0.016,
        higher_is_worse=True,
        enough_data=contacts >= min_live_answers,
        sample=contacts,
        window_minutes=15,
    )


def run(book: AlertBook, readings, start=T0):
    """Feed (minutes after start, check) pairs; return (minute, state, severity) of each alert."""
    out = []
    for minute, check in readings:
        alert = book.observe("winback", check, start + timedelta(minutes=minute), COOLDOWN)
        if alert is not None:
            out.append((minute, alert.state, alert.severity))
    return out


def test_one_abandon_in_two_answers_fires_nothing():
    assert run(AlertBook(), [(0, abandon(1, 2))]) == []


def test_rise_and_fall_fires_once_escalates_once_and_resolves_once_without_flapping():
    readings = [
        (0, abandon(1, 100)),
        (1, abandon(25, 1000)),
        (2, abandon(29, 1000)),
        (3, abandon(35, 1000)),
        (4, abandon(50, 1000)),
        (5, abandon(29, 1000)),  # 2.9 %: still firing (hysteresis)
        (6, abandon(19, 1000)),  # 1.9 %: above the clear level of 1.6 %
        (7, abandon(15, 1000)),  # 1.5 %: resolves
        (8, abandon(17, 1000)),
        (9, abandon(10, 1000)),
    ]
    assert run(AlertBook(), readings) == [
        (1, "firing", "warning"),
        (3, "firing", "critical"),
        (7, "resolved", "critical"),
    ]


def test_after_a_resolve_the_cooldown_holds_a_repeat_back():
    book = AlertBook()
    fired = run(book, [(0, abandon(40, 1000)), (1, abandon(10, 1000)), (3, abandon(40, 1000)), (7, abandon(40, 1000))])
    assert fired == [(0, "firing", "critical"), (1, "resolved", "critical"), (7, "firing", "critical")]


def test_a_contact_rate_drop_fires_below_its_level_and_clears_above_the_clear_level():
    def contact(rate):
        return Check(
            Rule.CONTACT_RATE_DROP,
            rate,
            0.10,
            None,
            clear=0.125,
            higher_is_worse=False,
            enough_data=True,
            sample=500,
            window_minutes=15,
        )

    assert run(AlertBook(), [(0, contact(0.2)), (1, contact(0.09)), (2, contact(0.12)), (3, contact(0.13))]) == [
        (1, "firing", "warning"),
        (3, "resolved", "warning"),
    ]


def test_a_restarted_book_continues_the_episode():
    book = AlertBook()
    fired = book.observe("winback", abandon(40, 1000), T0, COOLDOWN)
    restarted = AlertBook()
    restarted.restore(decode_alert(encode_alert(fired)))
    assert restarted.observe("winback", abandon(40, 1000), T0 + timedelta(minutes=1), COOLDOWN) is None
    resolved = restarted.observe("winback", abandon(1, 1000), T0 + timedelta(minutes=2), COOLDOWN)
    assert (resolved.state, resolved.alert_id, resolved.first_seen) == ("resolved", fired.alert_id, T0)
    assert resolved.threshold == 0.016 and fired.threshold == 0.03 and fired.value == 0.04


def test_an_escalation_decided_in_the_same_instant_is_the_episodes_newest_transition():
    from msgspec.structs import replace

    from core.alerts import latest_by_episode

    book = AlertBook()
    warning = book.observe("winback", abandon(25, 1000), T0, COOLDOWN)
    critical = book.observe("winback", abandon(35, 1000), T0, COOLDOWN)
    critical = replace(critical, emitted_at=warning.emitted_at)  # same millisecond in the table
    assert latest_by_episode([critical, warning]) == [critical]
    assert latest_by_episode([warning, critical]) == [critical]


def test_a_backlog_of_transitions_logs_the_first_headlines_and_counts_the_rest():
    from core.alerts import log_lines

    book = AlertBook()
    alerts = []
    for n in range(30):  # thirty campaigns breach, the last five of them critically
        check = abandon(25 if n < 25 else 40, 1000)
        alerts.append(book.observe(f"campaign-{n:02d}", check, T0, COOLDOWN))
    for n in range(3):  # and three recover
        alerts.append(book.observe(f"campaign-{n:02d}", abandon(1, 1000), T0 + timedelta(minutes=10), COOLDOWN))
    lines = log_lines(alerts, limit=20)
    assert len(lines) == 21
    assert lines[0] == alerts[0].headline() and lines[19] == alerts[19].headline()
    assert lines[20] == (
        "13 more in this batch: 5 abandon rate warning, 5 abandon rate critical, "
        "3 abandon rate resolved (all on the alerts topic and the Alerts page)"
    )
    assert log_lines(alerts[:4], limit=20) == [alert.headline() for alert in alerts[:4]]
