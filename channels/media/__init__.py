"""News media (`media:NAME`): one channel per outlet, each a signed webhook (Standard Webhooks).

`channel` sends and reads the answers; `events` builds the payload (its JSON Schema and the
outlets' guide are in `docs/media/`); `pacing` keeps each outlet's rate across workers;
`settings` is an outlet's section; `sandbox` is a local outlet for rehearsals and tests.
"""

from __future__ import annotations

from standardwebhooks.webhooks import Webhook

from channels.base import ChannelContext
from channels.files import site_base_url
from channels.media.channel import MediaChannel, Signer
from channels.media.pacing import Pace
from channels.media.settings import MediaSettings
from channels.registry import ChannelSpec, split_name


def media_factory(ctx: ChannelContext) -> MediaChannel:
    """The outlet `ctx.name` from its settings section; ValueError (a start-up error) names what
    is wrong, never the secret."""
    own = {k: v for k, v in ctx.settings.items() if k in MediaSettings.model_fields}
    settings = MediaSettings.model_validate(own)
    known = {d["key"] for d in ctx.settings.get("outline", ())}
    unknown = [d for d in settings.domains if known and d not in known]
    if unknown:
        raise ValueError(
            f"unknown domains {', '.join(unknown)} (one of: {', '.join(sorted(known))})"
        )
    signers = [Signer(Webhook(settings.secret.get_secret_value()))]
    if settings.previous_secret.get_secret_value() and settings.previous_until is not None:
        signers.append(Signer(Webhook(settings.previous_secret.get_secret_value()),
                              settings.previous_until))  # fmt: skip
    return MediaChannel(
        ctx.name,
        settings.url,
        signers,
        ctx.session,
        site_base_url(ctx.settings),
        timeout=settings.timeout,
        pace=Pace(split_name(ctx.name)[1] or ctx.name, settings.rate, ctx.redis),
        domains=settings.domains,
        regions=settings.regions,
    )


SPEC = ChannelSpec(
    "media",
    media_factory,
    MediaSettings,
    required=("url", "secret"),
    named=True,
    in_flight=8,
)
