"""The data-path protocol without sockets: credit, window, acknowledgements, redelivery."""

from __future__ import annotations

from pipeline.codec import Codec
from pipeline.flow import ACK_DEAD, ACK_OK, InBatch, OutEdge, cut
from pipeline.routing import KEY, Route


def edge(window: int = 4, route: Route | None = None, size: int = 10) -> OutEdge:
    e = OutEdge("t", route or Route(), window, size, 1 << 20)
    e.set_members([(0, 101, "ep0"), (1, 102, "ep1")], None)
    return e


def test_cut_by_count_and_bytes() -> None:
    assert [len(b) for b in cut(list(range(25)), 10, 1 << 20)] == [10, 10, 5]


def test_nothing_is_sent_without_credit() -> None:
    e = edge()
    e.add([{"i": i} for i in range(30)], [], Codec())
    assert e.pending == 3
    assert e.sendable() == []
    e.on_credit(101, 2)
    sent = e.sendable()
    assert [p.rid for p, _ in sent] == [101, 101]
    assert e.pending == 1 and e.inflight == 2


def test_window_bounds_inflight_across_replicas() -> None:
    e = edge(window=3)
    e.add([{"i": i} for i in range(100)], [], Codec())
    e.on_credit(101, 10)
    e.on_credit(102, 10)
    assert len(e.sendable()) == 3
    assert e.counters.inflight_max == 3


def test_round_robin_prefers_the_replica_with_most_free_credit() -> None:
    e = edge(window=100)
    e.on_credit(101, 4)
    e.on_credit(102, 4)
    e.add([{"i": i} for i in range(80)], [], Codec())
    sent = e.sendable()
    per = {101: 0, 102: 0}
    for peer, _ in sent:
        per[peer.rid] += 1
    assert per == {101: 4, 102: 4}  # nobody hoards more than its credit


def test_ack_releases_parents_only_when_every_output_is_delivered() -> None:
    e = edge()
    e.on_credit(101, 10)
    parent = InBatch(src=9, seq=1, attempt=0, records=5, frames=[])
    e.add([{"i": i} for i in range(20)], [parent], Codec())
    parent.refs -= 1  # processing done
    (_, b1), (_, b2) = e.sendable()
    assert e.on_ack(101, b1.seq, ACK_OK) == []
    assert e.on_ack(101, b2.seq, ACK_DEAD) == [parent]
    assert e.counters.records_acked == 10 and e.counters.records_dead == 10
    assert e.idle


def test_a_gone_replica_s_batches_are_delivered_again_suspects_marked() -> None:
    e = edge()
    e.on_credit(101, 3)
    e.add([{"i": i} for i in range(30)], [], Codec())
    sent = e.sendable()
    seqs = [b.seq for _, b in sent]
    gone, condemned = e.set_members([(0, None, None), (1, 102, "ep1")], None, suspects=[seqs[1]])
    assert condemned == []
    assert [p.rid for p in gone] == [101]
    assert e.inflight == 0 and e.pending == 3
    assert [b.attempt for b in e.queue] == [0, 1, 0]
    e.on_credit(102, 3)
    again = e.sendable()
    assert [b.seq for _, b in again] == seqs and all(p.rid == 102 for p, _ in again)
    assert e.counters.batches_sent == 3  # a redelivery is not counted as sent twice
    assert e.counters.redelivered == 3


def test_a_suspect_that_was_already_delivered_again_is_condemned() -> None:
    e = edge()
    e.on_credit(101, 3)
    parent = InBatch(src=9, seq=1, attempt=0, records=10, frames=[])
    e.add([{"i": i} for i in range(10)], [parent], Codec())
    parent.refs -= 1
    ((_, b),) = e.sendable()
    b.attempt = 1  # it was delivered once more already
    _, condemned = e.set_members([(0, None, None), (1, 102, "ep1")], None, suspects=[b.seq])
    assert [x for _, x in condemned] == [b] and e.pending == 0
    assert e.condemn(b) == [parent]
    assert e.counters.records_dead == 10


def test_a_late_ack_for_a_batch_already_sent_elsewhere_is_not_counted_twice() -> None:
    e = edge()
    e.on_credit(101, 3)
    e.add([{"i": 1}], [], Codec())
    ((_, b),) = e.sendable()
    e.set_members([(0, None, None), (1, 102, "ep1")], None)
    e.on_credit(102, 3)
    ((peer, again),) = e.sendable()
    assert peer.rid == 102 and again is b
    assert e.on_ack(101, b.seq, ACK_OK) == []
    assert e.inflight == 1 and e.counters.records_acked == 0
    e.on_ack(102, b.seq, ACK_OK)
    assert e.idle and e.counters.records_acked == 1


def test_key_routed_batches_wait_for_their_owner() -> None:
    e = edge(route=Route(KEY, "k", 4))
    e.set_members([(0, 101, "ep0"), (1, 102, "ep1")], [0, 1, 0, 1])
    e.add([{"k": k} for k in range(20)], [], Codec())
    e.on_credit(101, 5)
    sent = e.sendable()
    assert sent and all(p.rid == 101 for p, _ in sent)
    assert e.pending >= 1  # replica 1's share waits for its credit


def test_an_ack_that_overtakes_the_news_of_its_replica_s_end_still_counts() -> None:
    e = edge()
    e.on_credit(101, 3)
    parent = InBatch(src=9, seq=1, attempt=0, records=10, frames=[])
    e.add([{"i": i} for i in range(10)], [parent], Codec())
    parent.refs -= 1
    ((_, b),) = e.sendable()
    e.set_members([(0, None, None), (1, 102, "ep1")], None)  # 101 is gone: b is queued again
    assert e.pending == 1
    assert e.on_ack(101, b.seq, ACK_OK) == [parent]  # its last ack arrives after all
    assert e.pending == 0 and e.counters.records_acked == 10
    e.on_credit(102, 3)
    assert e.sendable() == []  # not delivered twice
