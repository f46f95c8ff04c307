"""What a resource handler gets: the store, the decoded parameters, who is calling, events."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .events import Emitter
from .store import Store


@dataclass
class Ctx:
    store: Store
    params: dict[str, Any]
    publishable: bool
    base_url: str  # the emulator as the caller reached it (for receipt and 3-D Secure URLs)
    emit: Emitter
    op: str = ""  # the operation being served ("POST /v1/refunds"), for its declared values
    # Schedule what Stripe does "some time later": schedule(kind, object_id, steps=1), or
    # schedule(kind, object_id, after=SECONDS) on the emulator's clock.
    schedule: Callable[..., None] = lambda kind, object_id, steps=1, after=None: None
    # The emulator's time (real time plus how far /_emulator/clock moved it): what decides
    # whether something has expired. Objects' `created` times stay real time (wire.now).
    now: Callable[[], float] = time.time
