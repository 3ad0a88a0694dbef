"""The `transformers` backend: a local model (a directory, or a .gguf file) run with
transformers and torch, its decoding constrained by xgrammar to the events JSON Schema, many
documents per `generate()` call. torch, transformers and xgrammar are imported when the
backend is made, so the base install works without them (the `llm` extra has them)."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eventpipe.nlp.llm.base import BackendError, InvalidOutput, OverBudget
from eventpipe.nlp.llm.prompt import Messages
from eventpipe.settings import Settings

log = logging.getLogger(__name__)

# Never reach for a hub: the model is a path, and this machine may have no network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# Character classes of xgrammar's EBNF: a bounded string's, and JSON's.
_BOUNDED_CHARS = r'[^\"\\\r\n]'
_JSON_CHARS = r'[^\"\\\0-\x1f]'
_EXTRA_HINT = "the transformers events backend needs the llm extra: pip install 'eventpipe[llm]'"


def _imports() -> tuple[Any, Any, Any]:
    try:
        import torch
        import transformers
        import xgrammar
    except ImportError as exc:
        raise RuntimeError(f"{_EXTRA_HINT} ({exc})") from exc
    return torch, transformers, xgrammar


def pick_device(torch: Any, wanted: str) -> str:
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("EVENTPIPE_LLM_DEVICE=cuda, but torch sees no CUDA device")
    return wanted


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eventpipe" / "gguf"


def gguf_cache_dir(gguf: Path, root: Path | None = None) -> Path:
    """Where the converted model of a .gguf file is kept. Keyed by the file's path, size and
    modification time: hashing a multi-gigabyte file would cost what the cache saves."""
    stat = gguf.stat()
    key = f"{gguf.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return (root or cache_root()) / f"{gguf.stem}-{digest}"


def _converted(gguf: Path, transformers: Any, dtype: Any, root: Path | None) -> Path:
    """A model directory for a .gguf file. transformers dequantizes a GGUF on every load
    (about 20 s for a 135M model on two cores); the first load saves the result, later ones
    read it."""
    target = gguf_cache_dir(gguf, root)
    if (target / "config.json").is_file():
        return target
    started = time.perf_counter()
    kwargs = {"gguf_file": gguf.name, "local_files_only": True}
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    # Dequantized to plain tensors even where a GGUF matmul kernel could keep the blocks:
    # the cache holds an ordinary model.
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        dtype=dtype,
        quantization_config=transformers.GgufConfig(dequantize=True),
        **kwargs,
    )
    # The model still names the GGUF quantizer, which refuses to save; without it, it saves
    # and loads as any other.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a reader never sees half a model, and of two
    # processes converting at once, one rename wins.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = round(time.perf_counter() - started, 1)
    log.info("converted a GGUF model", extra={"cache": str(target), "seconds": seconds})
    return target


class TransformersGenerator:
    name = "transformers"

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "auto",
        batch_size: int = 16,
        max_new_tokens: int = 256,
        time_budget_s: float | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        torch, transformers, xgrammar = _imports()
        # Progress bars are for terminals, not a service's log.
        transformers.utils.logging.disable_progress_bar()
        self._torch, self._transformers, self._xgr = torch, transformers, xgrammar
        path = Path(model).expanduser()
        self.identity = f"transformers:{path.resolve()}:{max_new_tokens}"
        if not path.exists():
            raise FileNotFoundError(
                f"EVENTPIPE_LLM_MODEL: no model at {path} (a model directory or a .gguf file; "
                "names on a model hub are not downloaded)"
            )
        self.device = pick_device(torch, device)
        # bfloat16 halves the memory on a GPU; CPUs are fastest (and exact) in float32.
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        if path.suffix == ".gguf":
            path = _converted(path, transformers, dtype, cache_dir)
        self._path, self._dtype = path, dtype
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        # Left padding: every prompt of a batch then ends where generation starts.
        self.tokenizer.padding_side = "left"
        self.model: Any = self._load_model()
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.time_budget_s = time_budget_s
        self.stop_ids = self._stop_ids()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.convert_ids_to_tokens(self.stop_ids[0])
        vocab_size = self.model.get_output_embeddings().weight.shape[0]
        info = xgrammar.TokenizerInfo.from_huggingface(
            self.tokenizer, vocab_size=vocab_size, stop_token_ids=self.stop_ids
        )
        self._compiler = xgrammar.GrammarCompiler(info)
        self._grammars: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersGenerator:
        if not settings.llm_model:
            raise ValueError(
                "the transformers events backend needs EVENTPIPE_LLM_MODEL: a model directory "
                "or a .gguf file"
            )
        return cls(
            settings.llm_model,
            device=settings.llm_device,
            batch_size=settings.llm_batch_size,
            max_new_tokens=settings.llm_max_new_tokens,
            time_budget_s=settings.llm_time_budget_s,
        )

    def _stop_ids(self) -> list[int]:
        """The tokens that end an answer: the tokenizer's end of sequence and the model's
        (a chat model's end of turn is often only in its generation config)."""
        found: list[int] = []
        for ids in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            for token in ids if isinstance(ids, list) else [ids]:
                if isinstance(token, int) and token not in found:
                    found.append(token)
        if not found:
            raise BackendError("the model's tokenizer has no end-of-sequence token")
        return found

    def render(self, messages: Messages) -> str:
        if self.tokenizer.chat_template:
            text: str = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return text
        # A base model: plain turns, ending where the answer starts.
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join([*turns, "Assistant:"])

    def generate(
        self,
        requests: Sequence[Messages],
        schema: dict[str, Any],
        max_tokens: int | None = None,
    ) -> list[str | Exception]:
        budget = max_tokens or self.max_new_tokens
        grammar = self._grammar(schema)
        prompts = [self.render(messages) for messages in requests]
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False).input_ids]
        # Prompts of similar length share a batch: less padding to compute.
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        answers: list[str | Exception] = [BackendError("not generated")] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            try:
                texts = self._generate_batch([prompts[i] for i in chunk], grammar, budget)
            except Exception as exc:  # out of memory, say: this batch's documents fail
                log.warning("generate() failed", extra={"size": len(chunk), "error": str(exc)})
                texts = [exc] * len(chunk)
            for i, text in zip(chunk, texts, strict=True):
                answers[i] = text
        return answers

    def close(self) -> None:
        self._grammars.clear()

    def _load_model(self) -> Any:
        started = time.perf_counter()
        model = self._transformers.AutoModelForCausalLM.from_pretrained(
            self._path, dtype=self._dtype, local_files_only=True
        ).to(self.device)
        model.eval()
        log.info("language model loaded", extra={
            "device": self.device, "seconds": round(time.perf_counter() - started, 2)})
        return model

    def release(self) -> None:
        """Drop the model's weights (and the GPU memory they hold) while the stage is idle;
        the next `generate()` loads them again. The tokenizer and compiled grammars stay:
        they are small and slow to rebuild."""
        if self.model is None:
            return
        self.model = None
        gc.collect()
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
        log.info("language model released")

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema)
        if key not in self._grammars:
            # No whitespace between tokens: fewer tokens, and no room to ramble in.
            grammar = self._xgr.Grammar.from_json_schema(key, any_whitespace=False)
            # xgrammar (0.2) lets a string with a maxLength hold raw control characters,
            # which JSON forbids; its unbounded strings already exclude them.
            fixed = str(grammar).replace(_BOUNDED_CHARS, _JSON_CHARS)
            self._grammars[key] = self._compiler.compile_grammar(
                self._xgr.Grammar.from_ebnf(fixed)
            )
        return self._grammars[key]

    def _generate_batch(
        self, prompts: list[str], grammar: Any, max_new_tokens: int
    ) -> list[str | Exception]:
        torch, transformers = self._torch, self._transformers
        encoded = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        mask = _GrammarMask(self._xgr, grammar, len(prompts))
        limit = self.time_budget_s * len(prompts) if self.time_budget_s else None
        config = transformers.GenerationConfig(
            max_new_tokens=max_new_tokens,
            # On a CPU a batch's rows share the cores: the call gets each row's budget.
            max_time=limit,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.stop_ids,
        )
        if self.model is None:
            self.model = self._load_model()
        started = time.monotonic()
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                generation_config=config,
                logits_processor=transformers.LogitsProcessorList([mask]),
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        out_of_time = (
            limit is not None
            and time.monotonic() - started >= limit
            and new_tokens.shape[1] < max_new_tokens
        )
        mask.settle(new_tokens)
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        results: list[str | Exception] = []
        for row, text in enumerate(texts):
            if mask.complete(row):
                results.append(text)
            elif out_of_time:
                results.append(
                    OverBudget(
                        f"over the time budget of {self.time_budget_s:g} s "
                        "(EVENTPIPE_LLM_TIME_BUDGET_S)",
                        text,
                    )
                )
            else:
                results.append(
                    InvalidOutput(
                        f"cut off at {max_new_tokens} new tokens "
                        "(EVENTPIPE_LLM_MAX_NEW_TOKENS)",
                        text,
                    )
                )
        return results


class _GrammarMask:
    """A logits processor for `generate()`: each row may only take the tokens that keep its
    output a prefix of schema-valid JSON, then only an end token. One matcher per row; rows
    whose JSON is complete are skipped (generate() pads them)."""

    def __init__(self, xgr: Any, grammar: Any, rows: int) -> None:
        self._xgr = xgr
        self._matchers = [xgr.GrammarMatcher(grammar) for _ in range(rows)]
        self._bitmask = xgr.allocate_token_bitmask(rows, grammar.tokenizer_info.vocab_size)
        self._batch = xgr.BatchGrammarMatcher()
        self._started = False

    def settle(self, new_tokens: Any) -> None:
        """Take each row's final token, which generate() stops after without calling the
        processor again."""
        if new_tokens.shape[1] == 0:
            return
        last = new_tokens[:, -1].tolist()
        for row, matcher in enumerate(self._matchers):
            if not matcher.is_terminated():
                matcher.accept_token(last[row])

    def complete(self, row: int) -> bool:
        """Whether the row's JSON is whole (rather than cut off by the token budget)."""
        matcher = self._matchers[row]
        return bool(matcher.is_terminated() or matcher.is_completed())

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self._started:
            last = input_ids[:, -1].tolist()
            for row, matcher in enumerate(self._matchers):
                if not matcher.is_terminated() and not matcher.accept_token(last[row]):
                    raise BackendError(f"row {row} took token {last[row]} the grammar forbids")
        self._started = True
        active = [row for row, matcher in enumerate(self._matchers) if not matcher.is_terminated()]
        if active:
            self._batch.batch_fill_next_token_bitmask(
                [self._matchers[row] for row in active], self._bitmask, indices=active
            )
            # xgrammar masks on the CPU or CUDA: logits elsewhere (MPS) make a round trip.
            elsewhere = scores.device.type not in ("cpu", "cuda")
            target = scores.to("cpu") if elsewhere else scores
            self._xgr.apply_token_bitmask_inplace(
                target, self._bitmask.to(target.device), indices=active
            )
            if elsewhere:
                scores = target.to(scores.device)
        return scores
