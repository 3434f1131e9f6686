import pytest

from napari_dmcr.reconstruction import allocator

glibc = pytest.mark.skipif(not allocator._glibc(), reason="mallopt is glibc's")


class FakeLibc:
    def __init__(self, largest_mmap_threshold=allocator.THRESHOLD):
        self.calls, self.largest = [], largest_mmap_threshold

    def mallopt(self, option, value):
        self.calls.append((option, value))
        return int(option != allocator.M_MMAP_THRESHOLD or value <= self.largest)


@pytest.fixture
def fresh(monkeypatch):
    """No user setting, no call made yet in this process (the cache emptied before and after)."""
    for name in (*allocator.USER_SETTINGS, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    allocator.reuse_freed_memory.cache_clear()
    yield
    allocator.reuse_freed_memory.cache_clear()


@glibc
def test_both_thresholds_are_raised_once_per_process(monkeypatch, fresh):
    libc = FakeLibc()
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda _: libc)
    assert allocator.reuse_freed_memory() and allocator.reuse_freed_memory()
    threshold = allocator.THRESHOLD
    assert libc.calls == [(allocator.M_MMAP_THRESHOLD, threshold), (allocator.M_TRIM_THRESHOLD, threshold)]


@glibc
def test_an_older_glibc_gets_the_highest_mmap_threshold_it_takes(monkeypatch, fresh):
    libc = FakeLibc(largest_mmap_threshold=allocator.FALLBACK)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda _: libc)
    assert allocator.reuse_freed_memory()
    assert (allocator.M_MMAP_THRESHOLD, allocator.FALLBACK) in libc.calls
    assert (allocator.M_TRIM_THRESHOLD, allocator.THRESHOLD) in libc.calls


@glibc
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MALLOC_MMAP_THRESHOLD_", "65536"),
        ("MALLOC_TRIM_THRESHOLD_", "65536"),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=65536"),
    ],
)
def test_a_users_own_malloc_setting_is_kept(monkeypatch, fresh, variable, value):
    libc = FakeLibc()
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda _: libc)
    monkeypatch.setenv(variable, value)
    assert allocator.reuse_freed_memory() is False
    assert libc.calls == []


@glibc
@pytest.mark.skipif(allocator._users_choice(), reason="the user's own malloc setting")
def test_the_real_mallopt_takes_the_thresholds(fresh):
    assert allocator.reuse_freed_memory() is True
