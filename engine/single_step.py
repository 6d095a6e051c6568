"""Runs one block alone for the editor's "test this block" (engine/core/single_step.py) with
what the owner's runs have: their secrets as `<env.…>`, their data connection, the
operator's retry policy, timeouts and output limit, and the one outbound factory (the SSRF
guard and the sandbox's host overrides apply as in a run).

The test runs on the in-process executor's event loop, beside this process's runs: it
leases the owner's data connection from the same pools and its calls count against the
same provider limits (engine/core/providers.py), so a test during a big run cannot push a
provider past its cap."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from engine import secrets_registry
from engine.blocks import REGISTRY
from engine.config import build_services, data_source, retry_policy
from engine.core.executor import RunOptions
from engine.core.graph import Block, Graph
from engine.core.refs import Scope
from engine.core.single_step import (
    ENV_ROOT,
    NotTestable,
    StepTest,
    check_inputs,
    run_step_test,
    untestable_reason,
)

# Past the test's own bound: what closing its connections may take.
CLOSE_GRACE_SECONDS = 15.0


def run_single_step(
    *,
    owner_id: Any,
    graph: Graph,
    block: Block,
    values: Mapping[str, Any],
    trigger_input: Any = None,
) -> StepTest:
    """Synchronous (a request's thread waits for it); bounded by KLYNTOS_BLOCK_TEST_TIMEOUT
    on top of the block's own attempt timeouts. Refusals (a loop, a missing value) come
    before anything is opened or provisioned."""
    from engine.runner import data_pools, executor

    env = secrets_registry.owner_env(owner_id)
    reason = untestable_reason(block)
    if reason is not None:
        raise NotTestable(reason)
    check_inputs(block, REGISTRY[block.type], Scope({ENV_ROOT: env}).child(values))
    secrets_registry.register(env.values())  # so logs mask them, as for a run
    source = data_source(owner_id)  # provisions the owner's data on first use (ORM: here)
    options = RunOptions(
        block_timeout=settings.KLYNTOS_BLOCK_TIMEOUT,
        max_output_bytes=settings.KLYNTOS_MAX_OUTPUT_BYTES,
        retry=retry_policy(),
        # A block test shares providers as its owner's, like the owner's runs (fair share
        # between owners, engine/core/providers.py), not as one owner of every test.
        owner_key=str(owner_id),
    )
    within = settings.KLYNTOS_BLOCK_TEST_TIMEOUT

    async def test() -> StepTest:
        data = await data_pools().lease(source)
        try:
            services = build_services(data, call_depth=1)
        except BaseException:
            await data.aclose()
            raise
        try:
            return await run_step_test(
                graph,
                block,
                REGISTRY,
                services=services,
                env=env,
                values=values,
                trigger_input=trigger_input,
                options=options,
                within=within,
            )
        finally:
            await services.aclose()  # hands the data connection back

    future = asyncio.run_coroutine_threadsafe(test(), executor.loop)
    try:
        return future.result(within + CLOSE_GRACE_SECONDS)
    except TimeoutError:  # the test ended at `within`, but closing its connections hung
        future.cancel()
        return StepTest("failed", error=f"the test did not end in {within:g} s and was stopped")
