"""``freeze_heap``: what the daemon holds after start-up is out of the collector's reach.

Run in a child interpreter: freezing the heap of the test process would keep the cyclic
garbage of every later test for good.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_CHILD = textwrap.dedent(
    """
    import gc, json, weakref

    from mtasts.resolver.server import freeze_heap

    class Node:
        pass

    kept = Node()                      # what the daemon keeps: its cache, its zones
    garbage = Node()
    garbage.self = garbage             # a cycle nobody refers to any more
    collected = []
    watch = weakref.ref(garbage, lambda _: collected.append(True))
    del garbage
    gc.disable()                       # no collection but freeze_heap's own
    freeze_heap()
    later = Node()
    print(json.dumps({
        "frozen": gc.get_freeze_count(),
        "kept_collectable": any(o is kept for g in range(3) for o in gc.get_objects(generation=g)),
        "later_collectable": any(o is later for g in range(3) for o in gc.get_objects(generation=g)),
        "garbage_collected": bool(collected),
    }))
    """
)


def test_the_start_up_heap_is_frozen_and_its_garbage_collected_first() -> None:
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, timeout=60)
    result = json.loads(done.stdout)
    assert result["frozen"] > 1000  # the modules and everything else alive at start-up
    assert not result["kept_collectable"]  # no later collection walks what was there at start
    assert result["later_collectable"]  # what comes after is collected as usual
    assert result["garbage_collected"]  # the cyclic garbage of start-up is freed, not frozen
