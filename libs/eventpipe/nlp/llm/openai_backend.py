"""The `openai` backend: any server that speaks OpenAI's chat-completions API (vLLM, Ollama,
llama.cpp's server), asked for structured output. Requests run in a pool of
`llm_max_in_flight` threads, so no more than that many are ever in flight; connection
errors, 429 and 5xx are retried with exponential backoff. A server found unreachable after
those retries is not asked again in the same call: the other documents of the call fail at
once as transient (the stage's retry topic waits out an outage, not the stage itself). The
next call asks again: a document must never fail for good on an outage that ended before it
was tried (a replay sent right after the server came back, say)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from eventpipe.backoff import Backoff, retry
from eventpipe.errors import EventpipeError
from eventpipe.nlp.llm.base import SCHEMA_NAME, BackendError, BackendUnreachable, InvalidOutput
from eventpipe.nlp.llm.prompt import Messages
from eventpipe.settings import Settings
from eventpipe.urls import redact_url

log = logging.getLogger(__name__)
# httpx logs every request at INFO: one line per document is noise in a stage's log.
logging.getLogger("httpx").setLevel(logging.WARNING)

ResponseFormat = Literal["json_schema", "json_object"]


class _Outage:
    """What one `generate` call learned: the server was not reached (and the reason). Shared
    by the call's requests only, so it never outlives the call."""

    def __init__(self) -> None:
        self.reason: str | None = None


class OpenAIGenerator:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: SecretStr | None = None,
        response_format: ResponseFormat = "json_schema",
        max_tokens: int = 256,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        max_in_flight: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("EVENTPIPE_LLM_BASE_URL must be an http(s) URL, not "
                             f"{redact_url(base_url)!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        # What reasons and logs show: failure reasons are stored in checkpoints.
        self.shown_url = redact_url(self.url)
        self.model = model
        # What the response cache keys on besides the prompt: another model or budget, a miss.
        self.identity = f"openai:{model}:{max_tokens}:{response_format}"
        self.response_format = response_format
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        # The key goes into the client's headers only: never into a message or a log line.
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._client = httpx.Client(
            timeout=timeout_s,
            headers=headers,
            limits=httpx.Limits(
                max_connections=max_in_flight, max_keepalive_connections=max_in_flight
            ),
        )
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="eventpipe-openai")

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIGenerator:
        if not settings.llm_base_url or not settings.llm_model:
            raise ValueError(
                "the openai events backend needs EVENTPIPE_LLM_BASE_URL (the server's …/v1 "
                "URL) and EVENTPIPE_LLM_MODEL (the served model's name)"
            )
        return cls(
            settings.llm_base_url,
            settings.llm_model,
            api_key=settings.llm_api_key,
            response_format=settings.llm_response_format,
            max_tokens=settings.llm_max_new_tokens,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            max_in_flight=settings.llm_max_in_flight,
        )

    def generate(
        self,
        requests: Sequence[Messages],
        schema: dict[str, Any],
        max_tokens: int | None = None,
    ) -> list[str | Exception]:
        body_format = self._format(schema)
        outage = _Outage()
        budget = max_tokens or self.max_tokens
        futures = [self._pool.submit(self._complete, m, body_format, budget, outage)
                   for m in requests]
        answers: list[str | Exception] = []
        for future in futures:
            try:
                answers.append(future.result())
            except Exception as exc:
                answers.append(exc)
        return answers

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def release(self) -> None:
        """Nothing to give back: the model lives on the server."""

    def _format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.response_format == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True},
            }
        # OpenAI's json_object mode takes no schema; llama.cpp's server constrains to it.
        return {"type": "json_object", "schema": schema}

    def _complete(self, messages: Messages, response_format: dict[str, Any],
                  max_tokens: int, outage: _Outage) -> str:
        payload = {
            "model": self.model,
            "messages": messages,
            "response_format": response_format,
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        response = self._post(payload, outage)
        try:
            choice = response.json()["choices"][0]
            content = choice["message"]["content"]
            finish = choice.get("finish_reason")
        except (ValueError, LookupError, TypeError, AttributeError) as exc:
            raise BackendError(
                f"unexpected answer from {self.shown_url}: {type(exc).__name__}: "
                f"{response.text[:200]!r}"
            ) from None
        if finish == "length":
            raise InvalidOutput(
                f"cut off at {max_tokens} tokens (EVENTPIPE_LLM_MAX_NEW_TOKENS)",
                content if isinstance(content, str) else "",
            )
        if not isinstance(content, str):
            raise InvalidOutput(f"no text in the answer (finish_reason {finish!r})")
        return content

    def _post(self, payload: dict[str, Any], outage: _Outage) -> httpx.Response:
        if outage.reason is not None:
            raise BackendUnreachable(outage.reason)  # the same words: counted as one reason
        attempts = self.max_retries + 1

        def retrying(exc: Exception, retry_no: int, delay: float) -> None:
            log.info("retrying the model server",
                     extra={"attempt": retry_no, "delay_s": delay, "error": str(exc)})

        try:
            return retry(lambda: self._post_once(payload), retry_on=(_TryAgain,),
                         backoff=Backoff(self.backoff_s, self.max_backoff_s),
                         attempts=attempts, on_retry=retrying,
                         at_least_s=_retry_after)
        except _TryAgain as exc:
            tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
            message = f"no answer from {self.shown_url} after {tries}: {exc}"
            if exc.unreachable:
                # A 5xx may be this request's alone; a server not reached is down for everyone.
                outage.reason = message
            raise BackendUnreachable(message) from None

    def _post_once(self, payload: dict[str, Any]) -> httpx.Response:
        try:
            response = self._client.post(self.url, json=payload)
        except httpx.TransportError as exc:  # refused, reset, timed out
            raise _TryAgain(f"{type(exc).__name__}: {exc}", unreachable=True) from None
        status = response.status_code
        if status < 400:
            return response
        problem = f"HTTP {status}: {response.text[:200]!r}"
        if status != 429 and status < 500:
            # The server understood and said no: asking again changes nothing.
            raise BackendError(f"{self.shown_url} refused the request: {problem}")
        raise _TryAgain(problem, retry_after_s=_seconds(response.headers.get("retry-after")))


def _retry_after(exc: Exception) -> float:
    return exc.retry_after_s if isinstance(exc, _TryAgain) else 0.0


class _TryAgain(EventpipeError):
    """A request worth sending again: the server was not reached, busy (429) or failed (5xx)."""

    def __init__(self, problem: str, unreachable: bool = False,
                 retry_after_s: float = 0.0) -> None:
        super().__init__(problem)
        self.unreachable = unreachable
        self.retry_after_s = retry_after_s


def _seconds(value: str | None) -> float:
    """A Retry-After header in seconds (its HTTP-date form is ignored)."""
    try:
        return max(float(value or 0), 0.0)
    except ValueError:
        return 0.0
