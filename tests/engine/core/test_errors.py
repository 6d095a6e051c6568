import aiohttp
import httpx
import pytest

from engine.core.errors import BlockError, SizeLimitError, TransientError, timed_out
from engine.core.outbound import transport_errors
from engine.core.retry import RetryPolicy
from engine.core.ssrf import BlockedAddressError


def test_the_vocabulary() -> None:
    assert issubclass(TransientError, BlockError)
    assert issubclass(SizeLimitError, BlockError) and not issubclass(SizeLimitError, TransientError)
    assert issubclass(BlockedAddressError, BlockError)
    assert not issubclass(BlockedAddressError, TransientError)  # never retried
    assert str(timed_out(2.5)) == "timed out after 2.5 s"
    assert str(SizeLimitError("the output", 10)) == (
        "the output is larger than 10 bytes (KLYNTOS_MAX_OUTPUT_BYTES)"
    )


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("cut short"),
    ],
)
def test_transport_failures_are_transient_where_the_transport_lives(failure: Exception) -> None:
    with pytest.raises(TransientError, match=f"^upstream: {type(failure).__name__}"):
        with transport_errors("upstream"):
            raise failure


def test_other_errors_pass_through_unclassified() -> None:
    with pytest.raises(BlockedAddressError):
        with transport_errors("upstream"):
            raise BlockedAddressError("h", "127.0.0.1", "loopback")
    with pytest.raises(ValueError):
        with transport_errors("upstream"):
            raise ValueError("a bug")


def test_a_blocks_retry_option_changes_the_policy_within_the_operators_cap() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=10, max_retry_after=60)
    assert policy.for_block(None) is policy and policy.for_block({}) is policy
    mine = policy.for_block({"attempts": 6, "base_delay": 1, "max_delay": 30})
    assert (mine.max_attempts, mine.base_delay, mine.max_delay) == (6, 1.0, 30.0)
    assert mine.max_retry_after == 60
    import random

    assert mine.delay(1, retry_after=86_400, rng=random.Random(0)) == 60
