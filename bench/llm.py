"""Throughput of the `transformers` events backend by batch size: documents per second of
`generate()` (constrained to the events schema) on documents whose prompts are about 400
tokens, with up to 128 new tokens each.

The model is a directory or a .gguf file, or with `--random-shape smollm2-135m` a randomly
initialised model of SmolLM2-135M's shape (30 layers, 576 wide, 49,152-token vocabulary,
ChatML) built on the fly, with a byte-level BPE tokenizer trained on the generated corpus. A
random model under greedy decoding repeats itself and so uses its whole token budget: its
numbers are those of every document generating 128 tokens. A batch size is skipped when
the one before it says it would take longer than --budget-s.

    .venv/bin/python bench/llm.py --random-shape smollm2-135m [--batch-sizes 1,16,64,256]
    .venv/bin/python bench/llm.py path/to/model-or.gguf [--device cuda]

With `--vs-server`, the events stage on a .gguf file two ways in one run, on the same parsed
documents (the corpus generator's, or --docs FILE.jsonl): the `openai` backend against
llama.cpp's server (`make llm-server`) and the `transformers` backend, both with the
candidates prompt; documents per second of each, their ratio, and how many documents got
their events from the model (no fallback).

    .venv/bin/python bench/llm.py MODEL.gguf --vs-server [--docs FILE.jsonl] [--limit 12]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The shared test code (corpus, gold set, process measurements) lives in tests/support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from eventpipe.models import DocumentMessage, job_id_for
from eventpipe.nlp.events import EventInput
from eventpipe.nlp.llm import InvalidOutput, events_schema
from eventpipe.nlp.llm.prompt import Messages, build_messages
from eventpipe.nlp.llm.transformers_backend import TransformersGenerator
from eventpipe.settings import Settings
from support.corpus import generate_documents

PROMPT_TOKENS = 400
NEW_TOKENS = 128
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": {
        "vocab_size": 49152,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "tie_word_embeddings": True,
    },
}


def random_model(shape: str, directory: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dims = SHAPES[shape]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=dims["vocab_size"],
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator((d["text"] for d in generate_documents(3000, seed=11)), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(
        **dims,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def requests(generator: TransformersGenerator, count: int) -> list[Messages]:
    """Prompts of about PROMPT_TOKENS tokens: generated news documents, joined until long
    enough."""
    pool = [d["text"] for d in generate_documents(count * 8 + 8, seed=5)]
    made: list[Messages] = []
    while len(made) < count:
        text = pool.pop()
        while True:
            messages = build_messages(EventInput(text, [], [], []))
            size = len(generator.tokenizer(generator.render(messages)).input_ids)
            if size >= PROMPT_TOKENS - 40:
                break
            text += " " + pool.pop()
        made.append(messages)
    return made


def new_tokens(generator: TransformersGenerator, answers: list[str | Exception]) -> float:
    texts = [
        a if isinstance(a, str) else a.output if isinstance(a, InvalidOutput) else ""
        for a in answers
    ]
    return sum(len(generator.tokenizer(t).input_ids) for t in texts) / len(texts)


def parsed(docs: list[dict[str, Any]]) -> list[DocumentMessage]:
    """The documents as the events stage gets them: through the NER and DP stages."""
    from eventpipe.nlp.model import load_pipeline
    from services.dp.service import make_process as dp_process
    from services.ner.service import make_process as ner_process

    nlp = load_pipeline()
    batch: Sequence[Any] = [
        DocumentMessage(job_id=job_id_for("bench_llm"), batch_id="bench_llm", doc_id=d["id"],
                        text=d["text"]) for d in docs]
    for process in (ner_process(nlp), dp_process(nlp)):
        batch = process(batch)
    return [m for m in batch if isinstance(m, DocumentMessage)]


def vs_server(model: Path, docs: list[dict[str, Any]], threads: int | None) -> None:
    from eventpipe.kafka.broker import free_port
    from eventpipe.nlp.events import get_backend
    from eventpipe.nlp.llm import server as llm_server
    from services.llm.service import make_process as events_process

    messages = parsed(docs)
    print(f"{len(messages)} documents, {sum(len(m.text) for m in messages) / len(messages):.0f} "
          "characters on average")
    port = free_port()
    binary = llm_server.server_binary(Settings())
    server = subprocess.Popen(llm_server.server_command(binary, model, port, threads),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rates: dict[str, float] = {}
    try:
        llm_server.wait_healthy(port, server, timeout_s=120)
        configs = {
            "openai": Settings(llm_backend="openai", llm_base_url=llm_server.base_url(port),
                               llm_model=model.stem, llm_cache=False, llm_timeout_s=600),
            "transformers": Settings(llm_backend="transformers", llm_model=str(model),
                                     llm_cache=False, llm_time_budget_s=None),
        }
        print("backend       docs/s  s/doc  from the model")
        for name, settings in configs.items():
            backend = get_backend(name, settings)
            process = events_process(backend)
            process(messages[:1])  # loads and warms up, outside the timing
            started = time.perf_counter()
            out = process(messages)
            seconds = time.perf_counter() - started
            rates[name] = len(messages) / seconds
            own = sum(isinstance(m, DocumentMessage) and m.events_backend == name for m in out)
            print(f"{name:<12} {rates[name]:7.3f} {seconds / len(messages):6.1f}  "
                  f"{own}/{len(messages)}", flush=True)
            getattr(backend, "close", lambda: None)()
    finally:
        server.terminate()
        server.wait(timeout=30)
    ratio = rates["openai"] / rates["transformers"]
    print(f"ratio openai(llama-server) / transformers: {ratio:.2f} (docs/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a model directory or a .gguf file")
    parser.add_argument("--vs-server", action="store_true",
                        help="llama-server against transformers on the same model")
    parser.add_argument("--docs", type=Path, help="--vs-server: a JSONL file of documents")
    parser.add_argument("--limit", type=int, default=12, help="--vs-server: documents")
    parser.add_argument("--threads", type=int, help="--vs-server: llama-server's threads")
    parser.add_argument("--random-shape", choices=sorted(SHAPES))
    parser.add_argument("--batch-sizes", default="1,16,64,256")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--budget-s", type=float, default=600.0)
    args = parser.parse_args()
    if args.vs_server:
        if not args.model:
            parser.error("--vs-server needs a .gguf model")
        if args.docs:
            docs = [json.loads(line) for line in args.docs.read_text().splitlines() if line]
        else:
            docs = generate_documents(args.limit, seed=5)
        vs_server(Path(args.model), docs[:args.limit], args.threads)
        return
    if bool(args.model) == bool(args.random_shape):
        parser.error("give a model path or --random-shape, not both")
    sizes = [int(size) for size in args.batch_sizes.split(",")]

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or random_model(args.random_shape, Path(scratch))
        started = time.perf_counter()
        generator = TransformersGenerator(
            model, device=args.device, batch_size=max(sizes), max_new_tokens=NEW_TOKENS
        )
        print(f"model: {args.model or args.random_shape} on {generator.device}, "
              f"loaded in {time.perf_counter() - started:.1f} s")
        prompts = requests(generator, max(sizes))
        schema = events_schema()
        prompt_tokens = sum(len(generator.tokenizer(generator.render(m)).input_ids)
                            for m in prompts) / len(prompts)
        print(f"prompts: {prompt_tokens:.0f} tokens on average; up to {NEW_TOKENS} new tokens")
        # Compiles the grammar and warms the kernels, outside the timings.
        generator.max_new_tokens = 4
        generator.generate(prompts[:1], schema)
        generator.max_new_tokens = NEW_TOKENS
        rate = 0.0
        print("batch  docs/s  s/batch  new tokens/doc")
        for size in sizes:
            if rate and size / rate > args.budget_s:
                print(f"{size:>5}  skipped: about {size / rate:.0f} s at the last rate "
                      f"(--budget-s {args.budget_s:.0f})")
                continue
            generator.batch_size = size
            started = time.perf_counter()
            answers = generator.generate(prompts[:size], schema)
            seconds = time.perf_counter() - started
            rate = size / seconds
            print(f"{size:>5}  {rate:6.2f}  {seconds:7.1f}  {new_tokens(generator, answers):6.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
