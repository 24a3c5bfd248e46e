"""The arq jobs: `deliver` one delivery to its channel, and `sweep` what is due.

Only here does a channel's `RetryableError` become `arq.Retry`, with exponential backoff and
jitter that honours the remote's retry-after, up to `dispatch.max_attempts`; then the delivery
fails with its last error, for a person to retry. A `PermanentError` fails it at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy.exc import DBAPIError

from channels.base import NotForChannel, PermanentError, Receipt, RetryableError
from channels.batching import Batcher
from dispatcher.dispatch import deliveries, digests, outcomes, queue
from dispatcher.dispatch.channels import Enabled
from dispatcher.dispatch.claims import Claim, Later
from dispatcher.rules.catalogue import Catalogue
from dispatcher.rules.states import Action, DeliveryStatus
from dispatcher.settings import Settings
from dispatcher.storage.db import Database

log = logging.getLogger(__name__)


# How long a batch waits for more requests. Each batch costs a transaction and a ledger append
# whatever its size, and arq starts a worker's jobs one by one (a few Redis round trips each):
# without waiting, a busy worker's batches held 2 or 3 deliveries; at 10 ms, 5 or 6 (claims and
# outcomes, 11 requests), for at most 10 ms more on each claim and each outcome.
BATCH_WAIT = 0.01

# What a job asks of the batches: a delivery id to claim, or an attempt's outcome to record.
Request = int | outcomes.Outcome
Answer = Claim | Later | None | bool


@dataclass
class Steps:
    """The `StepStore` of a worker's multi-step channels: a step's ids are written to the
    delivery, guarded by the attempt's lease, before the channel's next remote call."""

    db: Database
    in_flight: dict[str, Claim] = field(default_factory=dict)  # by delivery key
    saved: dict[str, dict[str, Any]] = field(default_factory=dict)  # this attempt's, by key

    async def save(self, key: str, steps: Mapping[str, Any]) -> None:
        claim = self.in_flight.get(key)
        if claim is None:
            raise RetryableError(f"delivery {key} is not being sent by this worker")
        merged = {**claim.publication.steps, **self.saved.get(key, {}), **steps}
        if not await deliveries.save_steps(self.db, claim, merged):
            raise RetryableError(f"delivery {key}: lease lost; another worker has taken it over")
        self.saved[key] = merged

    def start(self, claim: Claim) -> None:
        self.in_flight[claim.key] = claim
        self.saved.pop(claim.key, None)

    def done(self, claim: Claim) -> dict[str, Any] | None:
        """Forget the attempt; the steps it saved. A newer attempt of the same delivery (after
        this one's lease ran out) keeps its own."""
        if self.in_flight.get(claim.key) is not claim:
            return None
        del self.in_flight[claim.key]
        return self.saved.pop(claim.key, None)


@dataclass
class WorkerDeps:
    """What every job uses, built once when the worker starts (held in the arq ctx).

    Claims and outcomes of concurrent jobs go through one batcher: one transaction (and one
    ledger append) serves many deliveries, those starting and those finishing alike.
    """

    settings: Settings
    db: Database
    catalogue: Catalogue
    channels: dict[str, Enabled]
    steps: Steps
    closers: list[Any]
    batches: Batcher[Request, Answer]
    limits: dict[str, asyncio.Semaphore]

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        catalogue: Catalogue,
        channels: dict[str, Enabled],
        closers: list[Any],
        steps: Steps | None = None,
    ) -> WorkerDeps:
        lease = settings.dispatch.lease_seconds

        async def run(requests: Sequence[Request]) -> list[Answer]:
            finished = [r for r in requests if isinstance(r, outcomes.Outcome)]
            ids = [r for r in requests if isinstance(r, int)]
            written, claims = await _once_more_if_disconnected(
                lambda: deliveries.settle_and_claim(db, finished, ids, lease, catalogue)
            )
            claimed, recorded = iter(claims), iter(written)
            return [next(claimed) if isinstance(r, int) else next(recorded) for r in requests]

        limits = {name: asyncio.Semaphore(e.concurrency) for name, e in channels.items()}
        batches = Batcher(run, max_wait=BATCH_WAIT)
        return cls(settings, db, catalogue, channels, steps or Steps(db), closers, batches, limits)

    async def claim(self, delivery_id: int) -> Claim | Later | None:
        return cast(Claim | Later | None, await self.batches.submit(delivery_id))

    async def record(self, outcome: outcomes.Outcome) -> bool:
        """Write an attempt's outcome; False if its claim had lost the lease."""
        return cast(bool, await self.batches.submit(outcome))


DEPS = "gongkai"
T = TypeVar("T")


async def _once_more_if_disconnected(call: Callable[[], Awaitable[T]]) -> T:
    """Run a batch; if its pooled connection was dead (the worker's engine does not ping
    before use), run it again on a fresh one.

    A second run is harmless: a claim that did commit leaves its rows leased (nothing to do
    now; the sweeper sends them when the lease runs out), an outcome that did commit no longer
    matches its guard and reports a lost lease, without a second ledger event.
    """
    try:
        return await call()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("database connection lost; running the batch again: %s", exc.orig)
        return await call()


def backoff(
    attempt: int, base: float, cap: float, retry_after: float | None = None, jitter: float = 0.5
) -> float:
    """Seconds before the next attempt: base·2^(attempt-1), capped, ±jitter, ≥ retry-after."""
    delay = min(cap, base * 2 ** (attempt - 1))
    delay *= 1 - jitter + 2 * jitter * random.random()  # noqa: S311 - spreading load, not crypto
    return float(max(delay, retry_after or 0.0))


async def deliver(ctx: dict[str, Any], delivery_id: int) -> str:
    """Send one delivery: claim it, call its channel, record the outcome."""
    deps: WorkerDeps = ctx[DEPS]
    outcome = await deps.claim(delivery_id)
    if outcome is None:
        return "nothing to do"
    if isinstance(outcome, Later):
        raise Retry(defer=outcome.delay)
    return await _attempt(deps, outcome)


async def _attempt(deps: WorkerDeps, claim: Claim) -> str:
    dispatch = deps.settings.dispatch
    enabled = deps.channels.get(claim.channel)
    if enabled is None:
        reason = f"channel {claim.channel!r} is not enabled in this worker"
        await deps.record(outcomes.failure_outcome(claim, reason, None))
        return str(DeliveryStatus.FAILED)
    deps.steps.start(claim)
    try:
        async with deps.limits[claim.channel], asyncio.timeout(dispatch.lease_seconds * 0.8):
            receipt = await _call(enabled, claim)
        if receipt.pending and enabled.confirmer is None:
            raise PermanentError(
                f"channel {claim.channel} sent a pending receipt it cannot confirm"
            )
    except PermanentError as exc:
        await deps.record(outcomes.failure_outcome(claim, f"permanent: {exc}", None))
        return str(DeliveryStatus.FAILED)
    except NotForChannel as exc:
        await deps.record(outcomes.skipped_outcome(claim, str(exc)))
        return str(DeliveryStatus.SKIPPED)
    except Exception as exc:  # retryable, a timeout, or a channel bug: never lose the delivery
        if not isinstance(exc, RetryableError | TimeoutError):
            log.exception("channel %s raised unexpectedly on %s", claim.channel, claim.key)
        return await _retry_or_fail(deps, claim, exc)
    finally:
        saved = deps.steps.done(claim)
    if not await deps.record(outcomes.receipt_outcome(claim, receipt, saved)):
        return "lease lost"
    if receipt.pending:
        raise Retry(defer=receipt.check_after or outcomes.WAIT_FOR_ORDER)
    return str(DeliveryStatus.live(claim.action))


async def _call(enabled: Enabled, claim: Claim) -> Receipt:
    if claim.confirming and claim.receipt is not None:
        if enabled.confirmer is None:
            raise PermanentError(f"channel {claim.channel} cannot confirm a pending receipt")
        return await enabled.confirmer.confirm(claim.publication, claim.receipt)
    if claim.action == Action.WITHDRAW and claim.receipt is not None:
        return await enabled.channel.withdraw(claim.publication, claim.receipt)
    return await enabled.channel.publish(claim.publication)


async def _retry_or_fail(deps: WorkerDeps, claim: Claim, exc: Exception) -> str:
    dispatch = deps.settings.dispatch
    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if claim.attempt >= dispatch.max_attempts:
        final = f"{error} (gave up after {claim.attempt} attempts)"
        await deps.record(outcomes.failure_outcome(claim, final, None))
        return str(DeliveryStatus.FAILED)
    retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
    delay = backoff(claim.attempt, dispatch.retry_base, dispatch.retry_cap, retry_after)
    retry_at = datetime.now(UTC) + timedelta(seconds=delay)
    if not await deps.record(outcomes.failure_outcome(claim, error, retry_at)):
        return "lease lost"
    raise Retry(defer=delay)


async def sweep(ctx: dict[str, Any]) -> int:
    """Re-enqueue due deliveries whose jobs are missing (lost Redis, dead worker, schedules)."""
    deps: WorkerDeps = ctx[DEPS]
    pool: ArqRedis = ctx["redis"]
    horizon = timedelta(seconds=deps.settings.dispatch.sweep_interval)
    queued = await queue.sweep(deps.db, pool, horizon)
    await queue.mark_swept(pool)  # /readyz and /metrics show it: a dead worker is not hidden
    if queued:
        log.info("sweeper queued %d deliveries", queued)
    return queued


async def digest(ctx: dict[str, Any]) -> int:
    """Open and send the followers' daily digests that are due (`digests.tick`)."""
    deps: WorkerDeps = ctx[DEPS]
    limits = deps.settings.dispatch
    done = await digests.tick(deps.db, deps.catalogue, deps.channels, datetime.now(UTC),
                              limits.lease_seconds, limits.max_attempts)  # fmt: skip
    for line in done:
        log.info("digest %s", line)
    return len(done)
