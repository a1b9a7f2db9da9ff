"""The partition cursor: each offset processed once, in order, and holes noticed."""

from streams.offsets import REWIND_RETRY_S, PartitionCursor, Position

TP = ("call-events", 0)


def test_offsets_are_due_in_order_and_rereads_are_seen():
    cursor = PartitionCursor()
    cursor.start({TP: 10})
    assert [cursor.place(TP, offset) for offset in (10, 11, 12)] == [Position.DUE] * 3
    assert cursor.place(TP, 11) is Position.SEEN
    assert cursor.take_unlanded() == {TP: 13}
    assert cursor.take_unlanded() == {}


def test_a_hole_is_ahead_and_asks_for_one_seek_back_until_it_is_filled():
    cursor = PartitionCursor()
    cursor.start({TP: 0})
    cursor.place(TP, 0)
    assert cursor.place(TP, 5) is Position.AHEAD
    assert cursor.rewind_to(TP, now=100.0) == 1
    # Records fetched before the seek still arrive; they must not trigger more seeks.
    assert cursor.place(TP, 6) is Position.AHEAD
    assert cursor.rewind_to(TP, now=101.0) is None
    # A seek that never shows a record is issued again.
    assert cursor.rewind_to(TP, now=100.0 + REWIND_RETRY_S + 1) == 1
    assert [cursor.place(TP, offset) for offset in range(1, 7)] == [Position.DUE] * 6
    assert cursor.next_offsets[TP] == 7


def test_unknown_partitions_and_rebalances():
    cursor = PartitionCursor()
    assert cursor.place(TP, 0) is Position.UNKNOWN
    other = ("call-events", 1)
    cursor.start({TP: 3, other: 7})
    cursor.start({TP: 0})  # a partition already being read keeps its place
    assert cursor.next_offsets[TP] == 3
    cursor.keep_only([other])
    assert cursor.place(TP, 3) is Position.UNKNOWN
    assert cursor.place(other, 7) is Position.DUE


def test_jump_past_expired_records():
    cursor = PartitionCursor()
    cursor.start({TP: 0})
    cursor.jump(TP, 500)
    assert cursor.place(TP, 499) is Position.SEEN
    assert cursor.place(TP, 500) is Position.DUE
    assert cursor.take_unlanded() == {TP: 501}
