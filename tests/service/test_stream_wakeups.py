"""A feed change wakes its streams a few per event-loop turn, in order, each exactly once."""
import asyncio

from service.api.streams.wakeups import Change, Wakeups


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_change_wakes_per_turn_waiters_per_loop_turn_in_order():
    async def run():
        change = Change(Wakeups(per_turn=2))
        woken: list[int] = []

        async def stream(i: int) -> None:
            await change.wait()
            woken.append(i)
        tasks = [asyncio.create_task(stream(i)) for i in range(7)]
        await _turns(1)  # every stream is waiting
        change.set()
        counts = []
        for _ in range(6):
            await _turns(1)
            counts.append(len(woken))
        await asyncio.gather(*tasks)
        return woken, counts, change

    woken, counts, change = asyncio.run(run())
    assert woken == list(range(7))
    # two streams per turn (the counts a turn apart), never all at once
    assert counts[-1] == 7 and all(b - a <= 2 for a, b in zip([0, *counts], counts))
    assert counts[0] < 7
    assert change.is_set()


def test_a_waiter_that_gave_up_is_skipped_and_a_late_one_returns_at_once():
    async def run():
        change = Change(Wakeups(per_turn=1))
        woken: list[str] = []

        async def stream(name: str, timeout: float | None) -> None:
            try:
                async with asyncio.timeout(timeout):
                    await change.wait()
                woken.append(name)
            except TimeoutError:
                woken.append(name + " timed out")
        quitter = asyncio.create_task(stream("quitter", 0.001))
        stayer = asyncio.create_task(stream("stayer", None))
        await quitter
        change.set()
        await stayer
        await asyncio.wait_for(change.wait(), 1)  # already set: no waiting
        return woken

    assert asyncio.run(run()) == ["quitter timed out", "stayer"]
