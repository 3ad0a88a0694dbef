"""What the language-model backend tests build on: a tiny randomly initialised causal model
with its own tokenizer, built in well under a second, so that the `transformers` backend's
real loading, batching and constrained decoding run without any downloaded weights; and a
fake OpenAI-compatible server, standing in for the external model server only."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from eventpipe.settings import Settings
from eventpipe.stack import settings_env
from helpers import run_cli

# Text to train the tokenizer on: JSON punctuation and English, so pieces like `"},` exist.
_CORPUS = [
    '{"events": [{"trigger": "acquired", "type": "acquisition", "participants": '
    '[{"text": "Kestrel Bank", "role": "agent"}], "location": null, "time": "Monday"}]}',
    "Police arrested two men in Lisbon on Sunday after the storm hit the coast.",
    "The board of Kestrel Bank approved the merger with Orion Capital.",
    "You extract events from a news text. Answer with JSON only.",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


# An open-prompt answer with one event, for the fake model server.
ANSWER = json.dumps({"events": [{
    "trigger": "arrested", "type": "justice",
    "participants": [{"text": "Police", "role": "agent"}], "location": None, "time": None}]})


def cli(settings: Settings, *args: str, timeout: float = 240
        ) -> subprocess.CompletedProcess[str]:
    """`eventpipe ARGS` in a subprocess configured as `settings` (as the stack's services are)."""
    return run_cli(*args, data_dir=settings.data_dir, timeout=timeout,
                   env_extra=settings_env(settings))


def build_tiny_model(directory: Path, *, seed: int = 0) -> Path:
    """A byte-level BPE tokenizer trained on a few lines and a one-layer GPT-2 with random
    weights, saved as a model directory the backend loads like any other.

    Left alone, a random model under greedy decoding repeats itself: every string runs to
    its maxLength and every array to its maxItems, thousands of tokens. So the model gets one
    fixed logit bias towards tokens with a closing quote or bracket: its answers end within a
    few hundred tokens, and the grammar still decides everything else."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    specials = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|pad|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=4096,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = GPT2LMHeadModel(config)
    bias = torch.zeros(config.vocab_size)
    for token, index in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([token])
        bias[index] = 0.3 * ('"' in text) + 0.15 * ("]" in text)
    with torch.no_grad():
        # Hidden unit 0 leaves the final layer norm as a constant 1, so column 0 of the
        # output layer is a per-token bias.
        model.transformer.ln_f.weight[0] = 0.0
        model.transformer.ln_f.bias[0] = 1.0
        model.lm_head.weight[:, 0] = bias
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# --- a stand-in for an OpenAI-compatible model server --------------------------------------

Reply = str | tuple[int, str] | tuple[int, str, dict[str, str]] | dict[str, Any]
Answer = Callable[[dict[str, Any]], Reply]


class FakeModelServer:
    """Speaks the chat-completions API on 127.0.0.1, standing in for vLLM, Ollama or
    llama.cpp's server. `answer` maps a request body to a reply: a str is the model's text
    (finish_reason "stop"), a dict a whole response body, (status, body[, headers]) an HTTP
    error. It records every request and the most requests it ever had at once."""

    def __init__(self, answer: Answer, delay_s: float = 0.0, port: int = 0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        # A fixed port: a server that comes up where the stack has been calling in vain.
        self._http = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> FakeModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    def _reply(self, body: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            reply = self.answer(body)
        finally:
            with self._lock:
                self.in_flight -= 1
        if isinstance(reply, str):
            reply = completion(reply)
        if isinstance(reply, dict):
            return 200, json.dumps(reply).encode(), {"Content-Type": "application/json"}
        status, text, *more = reply
        return status, text.encode(), more[0] if more else {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers.items()))
                status, data, headers = server._reply(body)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def completion(content: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
    }


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for a server that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def build_tiny_gguf(directory: Path) -> Path:
    """A .gguf file of a one-layer Llama with random float32 weights and the tiny model's
    tokenizer, written with the `gguf` package the way llama.cpp's converter writes one."""
    import gguf
    import numpy as np

    build_tiny_model(directory / "source")
    spec = json.loads((directory / "source" / "tokenizer.json").read_text())
    specials = {token["content"]: token["id"] for token in spec["added_tokens"]}
    ids = {**spec["model"]["vocab"], **specials}
    tokens = sorted(ids, key=ids.__getitem__)
    path = directory / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    size, hidden, ffn, heads = len(tokens), 32, 64, 2
    writer.add_name("tiny")
    writer.add_context_length(4096)
    writer.add_embedding_length(hidden)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_merges([" ".join(pair) for pair in spec["model"]["merges"]])
    writer.add_bos_token_id(specials["<|endoftext|>"])
    writer.add_eos_token_id(specials["<|endoftext|>"])
    writer.add_pad_token_id(specials["<|pad|>"])
    rng = np.random.default_rng(0)

    def weight(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(size, hidden))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(hidden, np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        writer.add_tensor(f"blk.0.{name}.weight", weight(hidden, hidden))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(hidden, np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", weight(ffn, hidden))
    writer.add_tensor("blk.0.ffn_up.weight", weight(ffn, hidden))
    writer.add_tensor("blk.0.ffn_down.weight", weight(hidden, ffn))
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    writer.add_tensor("output.weight", weight(size, hidden))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
