"""Table stores the agents address by partition: in memory, or in RocksDB on local disk.

Faust's stores take a key's partition from the event being processed (`current_event()`). A
batch of `apply_events` spans partitions and the watermark timers run outside any event, so
our agents name the partition themselves: `get_in`, `stage` (a value whose changelog message
is on its way), `keep` (a value with no changelog message, for state a restart derives again).

`RocksStore` (URL `cxrocksdb://`, the worker's default) keeps each table partition in a
RocksDB database under the worker's data dir, so customer state is on disk rather than on the
Python heap, and a worker restarted on the same data dir reads the changelog only past the
offset it had stored (Faust's `persisted_offset`). All databases of a worker share one block
cache, and their memtables are charged to it (`memory_mib` in the URL, default 128 MiB).

A staged value reaches the database only once the broker has its changelog message (`written`,
in acknowledgement order); until then it is served from memory. So the local database never
holds a value the changelog lacks: a worker killed between the two reads its events again,
and the dedup by `cx-source` would otherwise skip them, leaving the changelog (what any other
worker restores) behind the metrics forever.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores import memory as faust_memory
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP
from yarl import URL

ROCKS_SCHEME = "cxrocksdb"
MEMORY_SCHEME = "cxmemory"
DEFAULT_MEMORY_MIB = 128
#: a memtable is flushed past this size (RocksDB's default of 64 MiB times 30 databases, 5
#: tables of 6 partitions, would be most of a worker's memory)
WRITE_BUFFER_BYTES = 4 * 2**20
BLOOM_BITS_PER_KEY = 10


def register() -> None:
    """Make `cxrocksdb://` and `cxmemory://` known to Faust (`App(store=...)`)."""
    STORES.aliases[ROCKS_SCHEME] = f"{__name__}:RocksStore"
    STORES.aliases[MEMORY_SCHEME] = f"{__name__}:MemoryStore"


def store_url(kind: str, memory_mib: int = DEFAULT_MEMORY_MIB) -> str:
    """The `store` URL for `Settings.store` ("rocksdb" or "memory")."""
    if kind == "rocksdb":
        return f"{ROCKS_SCHEME}://?memory_mib={memory_mib}"
    if kind == "memory":
        return f"{MEMORY_SCHEME}://"
    raise ValueError(f"unknown table store {kind!r}: use rocksdb or memory")


class MemoryStore(faust_memory.Store[bytes, bytes]):
    """Faust's in-memory store with the partition-addressed methods (the partition is not
    needed: one dict holds every partition)."""

    def get_in(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self.data.get(key)
        return value

    def stage(self, partition: int, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def written(self, partition: int, key: bytes, value: bytes) -> None:
        """Nothing to do: the value is stored already (memory is lost with the process)."""

    def keep(self, partition: int, key: bytes, value: bytes) -> None:
        self.data[key] = value


@functools.cache
def _shared_memory(memory_bytes: int) -> tuple[Any, Any]:
    """One block cache per worker process, with every memtable charged to it."""
    cache = rocksdict.Cache(memory_bytes)
    manager = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
        memory_bytes // 2, False, cache
    )
    return cache, manager


class BoundedRocksOptions(faust_rocksdb.RocksDBOptions):
    """RocksDB options for many small databases in one process under one memory budget."""

    def __init__(self, memory_bytes: int) -> None:
        super().__init__(use_rocksdict=True)
        self.memory_bytes = memory_bytes

    def as_options(self) -> Any:
        cache, manager = _shared_memory(self.memory_bytes)
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(2)
        options.set_write_buffer_manager(manager)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
        table.set_block_cache(cache)
        # index and filter blocks in the (bounded) cache, not on the heap per open file
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        options.set_compression_type(rocksdict.DBCompressionType.lz4())
        return options


class RocksStore(faust_rocksdb.Store):
    """Faust's RocksDB store (one database per table partition), addressed by partition, with
    values staged in memory until their changelog message is written."""

    def __init__(self, url: str | URL, app: Any, table: Any, **kwargs: Any) -> None:
        memory_mib = int(URL(url).query.get("memory_mib", DEFAULT_MEMORY_MIB))
        super().__init__(URL(f"{ROCKS_SCHEME}://"), app, table, driver="rocksdict", **kwargs)
        self.rocksdb_options = BoundedRocksOptions(memory_mib * 2**20)
        #: (partition, key) -> value not yet in the database: staged (its changelog message
        #: on its way) or kept while one was
        self._pending: dict[tuple[int, bytes], bytes] = {}
        self._kept: set[tuple[int, bytes]] = set()

    def get_in(self, partition: int, key: bytes) -> bytes | None:
        pending = self._pending.get((partition, key))
        if pending is not None:
            return pending
        value: bytes | None = self._db_for_partition(partition).get(key)
        return value

    def stage(self, partition: int, key: bytes, value: bytes) -> None:
        """The value, until `written` says its changelog message is with the broker."""
        self._pending[partition, key] = value
        self._kept.discard((partition, key))

    def written(self, partition: int, key: bytes, value: bytes) -> None:
        """The broker has the changelog message of `value` (called in the order of the
        partition's changelog): store it, and a value kept since, if any."""
        ref = (partition, key)
        if ref not in self._pending:  # revoked meanwhile: the new owner restores the changelog
            return
        db = self._db_for_partition(partition)
        db.put(key, value)
        pending = self._pending.get(ref)
        if pending is value:
            del self._pending[ref]
        elif ref in self._kept:
            db.put(key, pending)
            del self._pending[ref]
            self._kept.discard(ref)

    def keep(self, partition: int, key: bytes, value: bytes) -> None:
        """Store without a changelog message (state a restart derives again): at once, or
        after the value whose changelog message is still on its way."""
        ref = (partition, key)
        if ref in self._pending:
            self._pending[ref] = value
            self._kept.add(ref)
        else:
            self._db_for_partition(partition).put(key, value)

    def _set(self, key: bytes, value: bytes | None) -> None:
        raise RuntimeError(
            "write a cxpulse table with stage(partition, key, value): a batch spans partitions"
        )

    def revoke_partitions(self, table: Any, tps: set[TP]) -> None:
        revoked = {tp.partition for tp in tps if tp.topic in table.changelog_topic.topics}
        for ref in [ref for ref in self._pending if ref[0] in revoked]:
            del self._pending[ref]
            self._kept.discard(ref)
        super().revoke_partitions(table, tps)


def write_with_changelog(table: Any, partition: int, key: bytes, value: bytes) -> Awaitable[Any]:
    """Stage `value` in the table's store and send its changelog message; the store keeps it
    for good once the broker has the message (see the module's doc)."""
    store = table.data
    store.stage(partition, key, value)
    sent: Any = table.send_changelog(partition, key, value)

    def stored(done: Any) -> None:
        if not done.cancelled() and done.exception() is None:
            store.written(partition, key, value)

    sent.add_done_callback(stored)
    return sent  # type: ignore[no-any-return]
