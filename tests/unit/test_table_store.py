"""`agents.table_store.RocksStore` on a real RocksDB under a temp dir (no broker): values are
addressed by partition, and a staged value reaches the database only once its changelog
message is written, so the local database never runs ahead of the changelog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP

from agents.table_store import RocksStore, register, store_url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    register()
    app = faust.App("store-test", store=store_url("rocksdb", 16), datadir=str(tmp_path))
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=4)
    app.finalize()
    data = table.data
    assert isinstance(data, RocksStore)
    yield data
    data._dbs.clear()


def _on_disk(store: Any, partition: int, key: bytes) -> bytes | None:
    value: bytes | None = store._db_for_partition(partition).get(key)
    return value


def test_a_value_is_kept_in_the_partition_named_not_the_current_events(store: Any) -> None:
    store.stage(2, b"c1", b"v1")
    store.written(2, b"c1", b"v1")
    assert store.get_in(2, b"c1") == b"v1"
    assert store.get_in(1, b"c1") is None
    assert dict(store._visible_items(store._db_for_partition(2))) == {b"c1": b"v1"}


def test_a_staged_value_reaches_the_database_only_once_written(store: Any) -> None:
    store.stage(0, b"c1", b"v1")
    store.written(0, b"c1", b"v1")
    store.stage(0, b"c1", b"v2")
    assert store.get_in(0, b"c1") == b"v2"  # the agents see their own write at once
    assert _on_disk(store, 0, b"c1") == b"v1"  # a crash now restores v1, as the changelog has
    store.written(0, b"c1", b"v2")
    assert _on_disk(store, 0, b"c1") == b"v2"
    assert store._pending == {}


def test_acknowledgements_are_stored_in_order_under_a_newer_staged_value(store: Any) -> None:
    store.stage(0, b"c1", b"v1")
    store.stage(0, b"c1", b"v2")  # a timer wrote again before v1's message was written
    store.written(0, b"c1", b"v1")
    assert _on_disk(store, 0, b"c1") == b"v1"
    assert store.get_in(0, b"c1") == b"v2"
    store.written(0, b"c1", b"v2")
    assert _on_disk(store, 0, b"c1") == b"v2"
    assert store._pending == {}


def test_a_kept_value_waits_for_the_staged_one_before_it(store: Any) -> None:
    store.keep(1, b"c1", b"k0")  # nothing on its way: stored at once
    assert _on_disk(store, 1, b"c1") == b"k0"
    store.stage(1, b"c1", b"v1")
    store.keep(1, b"c1", b"k1")
    assert store.get_in(1, b"c1") == b"k1"
    assert _on_disk(store, 1, b"c1") == b"k0"
    store.written(1, b"c1", b"v1")
    assert _on_disk(store, 1, b"c1") == b"k1"
    assert store._pending == {}


def test_a_value_written_after_its_partition_was_revoked_is_left_to_the_new_owner(
    store: Any,
) -> None:
    store.stage(3, b"c1", b"v1")
    topic = store.table.changelog_topic.get_topic_name()
    store.revoke_partitions(store.table, {TP(topic, 3)})
    store.written(3, b"c1", b"v1")
    assert store._pending == {}
    assert 3 not in store._dbs


def test_writing_through_the_mapping_is_refused(store: Any) -> None:
    with pytest.raises(RuntimeError, match="stage"):
        store[b"c1"] = b"v1"


def test_an_unknown_store_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="rocksdb or memory"):
        store_url("redis")
