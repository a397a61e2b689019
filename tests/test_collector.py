"""The garbage-collector settings the stages' hot loops use (``wit_pipeline.beam``): paused while a loop
runs, back as it was once the last loop of the process ends; long-lived objects frozen once."""

import gc
import threading

from wit_pipeline.beam import collector_paused, freeze_long_lived


def test_the_collector_is_back_on_after_nested_and_overlapping_pauses():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()   # the outer loop still runs
    assert gc.isenabled()

    entered, leave = threading.Event(), threading.Event()

    def other_loop():
        with collector_paused():
            entered.set()
            leave.wait(5)

    thread = threading.Thread(target=other_loop)
    thread.start()
    entered.wait(5)
    with collector_paused():
        pass
    assert not gc.isenabled()   # the other thread's loop runs on
    leave.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_pause_ends_even_when_its_loop_fails_and_a_disabled_collector_stays_off():
    try:
        with collector_paused():
            raise ValueError("a bad row")
    except ValueError:
        pass
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_long_lived_objects_are_frozen_once_per_process():
    freeze_long_lived()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    kept = [[index] for index in range(1000)]   # new objects: a second call freezes nothing more
    freeze_long_lived()
    assert gc.get_freeze_count() == frozen and kept
