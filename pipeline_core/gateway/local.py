"""The local Discord gateway: the real bot object, driven without Discord's servers.

:class:`LocalGateway` plays Discord for one ``discord.Client`` (usually a
``commands.Bot``). It logs the bot in without a network, feeds READY and
GUILD_CREATE so a guild with a text channel exists, registers the bot's application
command tree, and then turns typed commands into the gateway payloads Discord would
send, fed through discord.py's own ``parse_message_create`` and
``parse_interaction_create``. Command lookup, converters, checks, autocomplete and
error handlers therefore all run for real.

Outbound traffic is captured at the two places discord.py sends it: the bot's own
``http.request`` (REST: channel messages, typing, command sync) and the webhook
adapter that interaction responses and follow-ups use. Both hooks exist only while
the gateway runs: the REST hook is an attribute of this bot's HTTP client, removed on
exit, and the webhook adapter is set in a private ``contextvars`` context in which
every event is fed, so nothing global changes and other clients are untouched.

Limits: one guild (``local-guild``) with one text channel; users are guild members
without roles; option types other than text, integers, numbers and booleans cannot
be typed in; attachments are not supported.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self

import discord
from discord.http import Route
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

from pipeline_core.gateway import payloads
from pipeline_core.gateway.payloads import Payload, SnowflakeFactory
from pipeline_core.gateway.slash import SlashInputError, SlashInvocation, parse_slash

logger = logging.getLogger(__name__)

#: Names discord.py gives the tasks that run the work a fed event starts.
BOT_TASK_PREFIXES = ("discord.py:", "CommandTree-invoker")

#: Message flag Discord sets on replies only the invoking user sees.
EPHEMERAL_FLAG = 1 << 6

_SNOWFLAKE_RE = re.compile(r"^[0-9]{1,20}$")

ExchangeKind = Literal["slash", "prefix", "autocomplete"]
OutboundKind = Literal["defer", "response", "followup", "edit", "message", "choices"]


class LocalGatewayError(RuntimeError):
    """The local gateway could not start, or was used outside its limits."""


@dataclass(frozen=True)
class Outbound:
    """One thing the bot sent back for an exchange, in the order it was sent.

    Attributes:
        kind: ``defer`` (interaction deferred), ``response`` (initial interaction
            response with a message), ``followup``, ``edit`` (of the original
            response), ``message`` (a channel message, for prefix commands) or
            ``choices`` (autocomplete suggestions).
        text: the message text (content, then embed titles, descriptions and
            fields), or the choice names one per line; empty for ``defer``.
        ephemeral: only the invoking user would see it.
    """

    kind: OutboundKind
    text: str
    ephemeral: bool = False


@dataclass
class Exchange:
    """One command sent to the bot and what the bot sent back.

    Attributes:
        text: the command as typed.
        kind: ``slash``, ``prefix`` or ``autocomplete``.
        user_id: the sending user's snowflake.
        replies: the text of every message the bot sent, in order.
        deferred: the bot deferred the interaction before answering.
        error: why the exchange failed on the gateway's side (Discord's client
            refused the input, the bot never responded or did not finish in time);
            ``None`` otherwise. Replies that explain an error are in ``replies``.
        started_at: when the event was fed (UTC).
        finished_at: when the bot's work for it ended or the wait timed out (UTC).
        event_id: the message or interaction snowflake fed to the bot, if any.
        outbound: everything the bot sent, including deferrals, in order.
    """

    text: str
    kind: ExchangeKind
    user_id: str
    replies: list[str]
    deferred: bool
    error: str | None
    started_at: datetime
    finished_at: datetime
    event_id: str | None = None
    outbound: list[Outbound] = field(default_factory=list)

    @property
    def followups(self) -> int:
        """How many follow-up messages the bot sent for an interaction."""
        return sum(1 for item in self.outbound if item.kind == "followup")


@dataclass
class _Recording:
    """What the bot sends while handling one fed event (kept in a context var)."""

    outbound: list[Outbound] = field(default_factory=list)
    original: Payload | None = None
    deferred_ephemeral: bool = False

    @property
    def responded(self) -> bool:
        return any(
            item.kind in ("defer", "response", "choices") for item in self.outbound
        )


_recording: contextvars.ContextVar[_Recording | None] = contextvars.ContextVar(
    "local_gateway_recording", default=None
)


class _CapturingWebhookAdapter(AsyncWebhookAdapter):
    """discord.py's webhook adapter with its one network call answered locally."""

    def __init__(self, gateway: LocalGateway) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._gateway = gateway

    async def request(self, route: Route, session: Any, **kwargs: Any) -> Any:
        return await self._gateway._answer_webhook(route, kwargs)


class LocalGateway:
    """Plays Discord for one bot object; an async context manager.

    Example::

        async with LocalGateway(bot) as gateway:
            exchange = await gateway.send("!favorites", user_id=1, user_name="Ada")

    Args:
        bot: the client to drive; it must not be logged in. The gateway logs it in
            on entry and closes it on exit.
        bot_name: the bot user's name.
        history: how many exchanges :attr:`history` keeps (oldest dropped first).
        ready_timeout: bound on logging in, READY and the command sync, in seconds.
    """

    def __init__(
        self,
        bot: discord.Client,
        *,
        bot_name: str = "RecipeBot",
        history: int = 200,
        ready_timeout: float = 10.0,
    ) -> None:
        self._bot = bot
        self._ids = SnowflakeFactory()
        self._ready_timeout = ready_timeout
        self.bot_user: Payload = payloads.user_payload(
            self._ids.next_id(), bot_name, bot=True
        )
        self.application_id = int(self.bot_user["id"])
        self.guild_id = self._ids.next_id()
        self.channel = payloads.channel_payload(
            self._ids.next_id(), self.guild_id, "recipes"
        )
        self.commands: list[Payload] = []
        self.history: deque[Exchange] = deque(maxlen=history)
        self._listeners: list[Callable[[Exchange], None]] = []
        self._adapter = _CapturingWebhookAdapter(self)
        self._context: contextvars.Context | None = None
        self._saved_ready_timeout: float | None = None
        self._running = False

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._running:
            raise LocalGatewayError("this LocalGateway is already running")
        if self._bot.user is not None:
            raise LocalGatewayError("the bot is already logged in; give a fresh bot")
        self._bot.http.request = self._answer_rest  # type: ignore[method-assign]
        self._context = contextvars.copy_context()
        self._context.run(async_context.set, self._adapter)
        self._running = True
        try:
            await asyncio.wait_for(self._start(), timeout=self._ready_timeout)
        except BaseException:
            await self._stop()
            raise
        logger.info(
            "local gateway ready: bot %s, guild %s, %d command(s) registered",
            self._bot.user,
            self.guild_id,
            len(self.commands),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _start(self) -> None:
        await self._bot.login("local-gateway")

        state = self._bot._connection
        self._saved_ready_timeout = state.guild_ready_timeout
        state.guild_ready_timeout = 0.2
        joined = payloads.iso_now()
        bot_member = payloads.member_payload(joined, self.bot_user)
        guild = payloads.guild_payload(
            self.guild_id, "local-guild", self.channel, bot_member, self.application_id
        )
        ready = payloads.ready_payload(
            self.bot_user, self.guild_id, self.application_id
        )
        self._feed(state.parse_ready, ready, None)
        self._feed(state.parse_guild_create, guild, None)
        await self._bot.wait_until_ready()

        tree = getattr(self._bot, "tree", None)
        if tree is not None:
            await tree.sync()

    async def _stop(self) -> None:
        if not self._running:
            return
        self._running = False
        try:
            await self._bot.close()
        finally:
            self._bot.http.__dict__.pop("request", None)
            if self._saved_ready_timeout is not None:
                self._bot._connection.guild_ready_timeout = self._saved_ready_timeout
            self._context = None

    # -- driving the bot -------------------------------------------------------

    async def send(
        self, text: str, *, user_id: int | str, user_name: str, timeout: float = 10.0
    ) -> Exchange:
        """Send ``text`` as the given user and return what the bot sent back.

        Text starting with ``/`` is a slash command, typed in the way Discord's
        client checks it (see :mod:`pipeline_core.gateway.slash`); anything else is
        a channel message, which the bot's prefix commands may answer.

        Args:
            text: the command, e.g. ``"/favorite add recipe:12"`` or ``"!save 12"``.
            user_id: the user's snowflake (1 to 20 digits).
            user_name: the user's display name, any Unicode.
            timeout: how long to wait for the bot's work to finish, in seconds.

        Raises:
            LocalGatewayError: the gateway is not running, or ``user_id`` or
                ``user_name`` is not something Discord would send.
        """
        if text.startswith("/"):
            return await self._interaction(
                text, "slash", user_id, user_name, timeout, focused=None
            )
        return await self._message(text, user_id, user_name, timeout)

    async def autocomplete(
        self,
        text: str,
        *,
        option: str,
        user_id: int | str,
        user_name: str,
        timeout: float = 10.0,
    ) -> Exchange:
        """Ask for autocomplete suggestions while ``option`` is being typed.

        The exchange's single ``choices`` outbound item (and reply) holds the
        suggested choice names, one per line.
        """
        return await self._interaction(
            text, "autocomplete", user_id, user_name, timeout, focused=option
        )

    def subscribe(self, listener: Callable[[Exchange], None]) -> Callable[[], None]:
        """Call ``listener`` with every finished exchange; returns an unsubscribe.

        Listeners run on the event loop and must not block.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def _message(
        self, text: str, user_id: int | str, user_name: str, timeout: float
    ) -> Exchange:
        user = self._user(user_id, user_name)
        message_id = self._ids.next_id()
        member = payloads.member_payload(payloads.iso_now())
        payload = payloads.message_payload(
            message_id,
            int(self.channel["id"]),
            self.guild_id,
            user,
            text,
            member=member,
        )
        state = self._bot._connection
        return await self._run(
            text,
            "prefix",
            user["id"],
            str(message_id),
            lambda rec: self._feed(state.parse_message_create, payload, rec),
            timeout,
        )

    async def _interaction(
        self,
        text: str,
        kind: ExchangeKind,
        user_id: int | str,
        user_name: str,
        timeout: float,
        *,
        focused: str | None,
    ) -> Exchange:
        user = self._user(user_id, user_name)
        started = datetime.now(UTC)
        try:
            invocation: SlashInvocation = parse_slash(
                text, self.commands, focused=focused
            )
        except SlashInputError as exc:
            refused = Exchange(
                text, kind, user["id"], [], False, str(exc), started, datetime.now(UTC)
            )
            self._finish(refused)
            return refused

        interaction_id = self._ids.next_id()
        member = payloads.member_payload(payloads.iso_now(), user)
        payload = payloads.interaction_payload(
            interaction_id=interaction_id,
            interaction_type=4 if kind == "autocomplete" else 2,
            application_id=self.application_id,
            token=f"local-interaction-{interaction_id}",
            guild_id=self.guild_id,
            channel=self.channel,
            member=member,
            data=invocation.data,
        )
        state = self._bot._connection
        return await self._run(
            text,
            kind,
            user["id"],
            str(interaction_id),
            lambda rec: self._feed(state.parse_interaction_create, payload, rec),
            timeout,
            started=started,
        )

    async def _run(
        self,
        text: str,
        kind: ExchangeKind,
        user_id: str,
        event_id: str,
        feed: Callable[[_Recording], None],
        timeout: float,
        *,
        started: datetime | None = None,
    ) -> Exchange:
        if not self._running:
            raise LocalGatewayError(
                "the local gateway is not running; use 'async with'"
            )
        started = started or datetime.now(UTC)
        recording = _Recording()

        before = asyncio.all_tasks()
        feed(recording)
        work = [task for task in asyncio.all_tasks() - before if _is_bot_task(task)]
        pending: Iterable[asyncio.Task[Any]] = ()
        if work:
            _, pending = await asyncio.wait(work, timeout=timeout)

        error = None
        if pending:
            error = f"the bot did not finish within {timeout:g} s"
        elif kind != "prefix" and not recording.responded:
            error = "the application did not respond"
        exchange = Exchange(
            text=text,
            kind=kind,
            user_id=user_id,
            replies=[item.text for item in recording.outbound if item.kind != "defer"],
            deferred=any(item.kind == "defer" for item in recording.outbound),
            error=error,
            started_at=started,
            finished_at=datetime.now(UTC),
            event_id=event_id,
            outbound=list(recording.outbound),
        )
        self._finish(exchange)
        return exchange

    def _finish(self, exchange: Exchange) -> None:
        self.history.append(exchange)
        logger.info(
            "local exchange %s %r from user %s: %d reply(ies), error=%s",
            exchange.kind,
            exchange.text,
            exchange.user_id,
            len(exchange.replies),
            exchange.error,
        )
        for listener in list(self._listeners):
            try:
                listener(exchange)
            except Exception:
                logger.exception(
                    "local gateway listener %r failed; it stays subscribed", listener
                )

    def _feed(
        self,
        parse: Callable[[Any], None],
        payload: Payload,
        recording: _Recording | None,
    ) -> None:
        if self._context is None:
            raise LocalGatewayError(
                "the local gateway is not running; use 'async with'"
            )

        def run() -> None:
            _recording.set(recording)
            parse(payload)

        # A copy per event: each event's tasks see their own recording.
        self._context.copy().run(run)

    def _user(self, user_id: int | str, user_name: str) -> Payload:
        text_id = str(user_id)
        if not _SNOWFLAKE_RE.match(text_id) or int(text_id) >= 2**64:
            raise LocalGatewayError(
                f"user id {text_id!r} is not a Discord snowflake (1 to 20 digits)"
            )
        if not 1 <= len(user_name) <= 100:
            raise LocalGatewayError("a user name is 1 to 100 characters")
        return payloads.user_payload(int(text_id), user_name)

    # -- what Discord answers ----------------------------------------------------

    async def _answer_rest(
        self, route: Route, *, files: Any = None, form: Any = None, **kwargs: Any
    ) -> Any:
        recording = _recording.get()
        body = kwargs.get("json")
        key = (route.method, route.path)
        if key == ("GET", "/users/@me"):
            return self.bot_user
        if key == ("GET", "/oauth2/applications/@me"):
            return payloads.application_payload(
                self.application_id, self.bot_user["username"], self.bot_user
            )
        if key == ("PUT", "/applications/{application_id}/commands"):
            self.commands = [self._registered(command) for command in body or []]
            return self.commands
        if key == ("POST", "/channels/{channel_id}/typing"):
            return None
        if key == ("POST", "/channels/{channel_id}/messages"):
            message = self._bot_message(body or {}, route.channel_id)
            if recording is not None:
                recording.outbound.append(
                    Outbound("message", _message_text(body or {}))
                )
            return message
        raise LocalGatewayError(
            f"the local gateway does not answer {route.method} {route.path}"
        )

    async def _answer_webhook(self, route: Route, kwargs: dict[str, Any]) -> Any:
        recording = _recording.get() or _Recording()
        body = kwargs.get("payload") or _multipart_json(kwargs.get("multipart"))
        method, path = route.method, route.path

        if path.endswith("/callback"):
            return self._answer_callback(route, body, recording)
        if method == "POST" and path == "/webhooks/{webhook_id}/{webhook_token}":
            first = not any(o.kind == "followup" for o in recording.outbound)
            inherited = first and recording.deferred_ephemeral
            recording.outbound.append(
                Outbound("followup", _message_text(body), inherited or _ephemeral(body))
            )
            return self._bot_message(body, self.channel["id"], webhook=True)
        if path.endswith("/messages/@original"):
            if method == "PATCH":
                recording.outbound.append(
                    Outbound("edit", _message_text(body), recording.deferred_ephemeral)
                )
                recording.original = self._bot_message(body, self.channel["id"])
            if method == "DELETE":
                recording.original = None
                return None
            return recording.original or self._bot_message({}, self.channel["id"])
        raise LocalGatewayError(f"the local gateway does not answer {method} {path}")

    def _answer_callback(
        self, route: Route, body: Payload, recording: _Recording
    ) -> Payload:
        response_type = body.get("type")
        data = body.get("data") or {}
        ephemeral = _ephemeral(data)
        resource: Payload = {"type": response_type}
        if response_type == 5:
            recording.deferred_ephemeral = ephemeral
            recording.outbound.append(Outbound("defer", "", ephemeral))
        elif response_type == 4:
            recording.outbound.append(
                Outbound("response", _message_text(data), ephemeral)
            )
            recording.original = self._bot_message(data, self.channel["id"])
            resource["message"] = recording.original
        elif response_type == 8:
            names = "\n".join(str(choice["name"]) for choice in data.get("choices", []))
            recording.outbound.append(Outbound("choices", names))
        else:
            raise LocalGatewayError(
                "the local gateway does not answer interaction response type"
                f" {response_type}"
            )
        interaction: Payload = {
            "id": str(route.webhook_id),
            "type": 2,
            "response_message_loading": response_type == 5,
            "response_message_ephemeral": ephemeral,
        }
        if recording.original is not None:
            interaction["response_message_id"] = recording.original["id"]
        return {"interaction": interaction, "resource": resource}

    def _registered(self, command: Payload) -> Payload:
        return {
            **command,
            "id": str(self._ids.next_id()),
            "application_id": str(self.application_id),
            "version": str(self._ids.next_id()),
            "type": command.get("type", 1),
        }

    def _bot_message(
        self, body: Payload, channel_id: Any, *, webhook: bool = False
    ) -> Payload:
        return payloads.message_payload(
            self._ids.next_id(),
            int(channel_id),
            self.guild_id,
            self.bot_user,
            body.get("content") or "",
            embeds=body.get("embeds") or [],
            flags=int(body.get("flags") or 0),
            webhook_id=self.application_id if webhook else None,
        )


def _is_bot_task(task: asyncio.Task[Any]) -> bool:
    return task.get_name().startswith(BOT_TASK_PREFIXES)


def _ephemeral(data: Payload) -> bool:
    return bool(int(data.get("flags") or 0) & EPHEMERAL_FLAG)


def _multipart_json(multipart: Any) -> Payload:
    for part in multipart or []:
        if part.get("name") == "payload_json":
            loaded: Payload = json.loads(part["value"])
            return loaded
    return {}


def _message_text(body: Payload) -> str:
    lines = [body.get("content") or ""]
    for embed in body.get("embeds") or []:
        lines.extend(
            str(embed[key]) for key in ("title", "description") if embed.get(key)
        )
        for embed_field in embed.get("fields") or []:
            lines.append(f"{embed_field['name']}: {embed_field['value']}")
    return "\n".join(line for line in lines if line)
