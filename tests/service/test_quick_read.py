"""Job polls skip the threadpool for stores whose reads are local, and for reads that have a
coroutine twin (PostgreSQL's hot reads); other network reads go to the threadpool."""
import asyncio
import threading

from service.api.deps import quick_read
from service.jobs.sqlite import SQLiteStore


class FakeStore:
    def __init__(self, local_reads: bool, twin: bool = False):
        self.local_reads, self.twin = local_reads, twin

    def read(self, value, *, twice=False):
        return threading.get_ident(), value * (2 if twice else 1)

    async def read_async(self, value, *, twice=False):
        return threading.get_ident(), -value * (2 if twice else 1)

    def coroutine_of(self, read):
        return self.read_async if self.twin and read == self.read else None


def run_read(store):
    async def main():
        return threading.get_ident(), await quick_read(store, store.read, 21, twice=True)
    return asyncio.run(main())


def test_local_reads_run_on_the_event_loop_thread():
    loop_thread, (read_thread, value) = run_read(FakeStore(local_reads=True))
    assert read_thread == loop_thread and value == 42


def test_network_reads_run_in_the_threadpool():
    loop_thread, (read_thread, value) = run_read(FakeStore(local_reads=False))
    assert read_thread != loop_thread and value == 42


def test_network_reads_with_a_coroutine_twin_run_it_on_the_event_loop():
    loop_thread, (read_thread, value) = run_read(FakeStore(local_reads=False, twin=True))
    assert read_thread == loop_thread and value == -42


def test_sqlite_declares_local_reads():
    assert SQLiteStore.local_reads is True
