"""A kernel that did not start is started again; nothing else is retried."""

import asyncio

import pytest
from conftest import with_kernel_retries, with_kernel_retries_async


def flaky(failures: list[Exception]):
    """A run that raises the given errors, one per call, then returns 42."""
    calls = []

    def run():
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return 42

    return run, calls


def test_a_kernel_that_did_not_start_is_started_again():
    run, calls = flaky([RuntimeError("Kernel didn't respond in 60 seconds")])
    assert with_kernel_retries(run) == 42 and len(calls) == 2


def test_the_third_failed_start_is_reported():
    errors = [RuntimeError("Kernel died before replying to kernel_info")] * 3
    run, calls = flaky(errors)
    with pytest.raises(RuntimeError, match="Kernel died before replying"):
        with_kernel_retries(run)
    assert len(calls) == 3


def test_other_errors_are_not_retried():
    run, calls = flaky([RuntimeError("Kernel died"), ValueError("a cell")])
    with pytest.raises(RuntimeError, match="Kernel died"):
        with_kernel_retries(run)
    assert len(calls) == 1


def test_the_async_form_retries_a_failed_start():
    run, calls = flaky([RuntimeError("Kernel didn't respond in 60 seconds")])

    async def run_async():
        return run()

    assert asyncio.run(with_kernel_retries_async(run_async)) == 42
    assert len(calls) == 2
