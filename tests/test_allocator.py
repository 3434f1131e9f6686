import os
import platform

import pytest

from napari_dmcr.reconstruction import allocator

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, option, value):
        self.calls.append((option, value))
        return 1


@pytest.fixture
def fresh(monkeypatch):
    """No user setting, no call made yet in this process (the cache emptied before and after)."""
    for name in allocator.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    allocator.reuse_freed_memory.cache_clear()
    yield
    allocator.reuse_freed_memory.cache_clear()


@glibc
def test_both_thresholds_are_raised_once_per_process(monkeypatch, fresh):
    libc = FakeLibc()
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    assert allocator.reuse_freed_memory() and allocator.reuse_freed_memory()
    threshold = allocator.THRESHOLD
    assert libc.calls == [(allocator.M_MMAP_THRESHOLD, threshold), (allocator.M_TRIM_THRESHOLD, threshold)]


@glibc
@pytest.mark.parametrize("name", allocator.USER_SETTINGS)
def test_a_users_own_malloc_setting_is_kept(monkeypatch, fresh, name):
    libc = FakeLibc()
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setenv(name, "65536")
    assert allocator.reuse_freed_memory() is False
    assert libc.calls == []


@glibc
@pytest.mark.skipif(any(name in os.environ for name in allocator.USER_SETTINGS), reason="the user's setting")
def test_the_real_mallopt_takes_the_thresholds(fresh):
    assert allocator.reuse_freed_memory() is True
