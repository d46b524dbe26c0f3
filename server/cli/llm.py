"""``stackserve generate`` and ``chat``: stream an answer from the LLMService to stdout."""

from __future__ import annotations

import argparse
import sys

from server.cli.common import (
    ADDRESS_HELP,
    Subparsers,
    add_command,
)


def _sampling_args(args: argparse.Namespace) -> dict:
    return {
        "max_tokens": args.max_tokens, "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
        "repetition_penalty": args.repetition_penalty, "seed": args.seed, "stop": args.stop or None,
        "ignore_eos": True if args.ignore_eos else None,
    }


def _stream_to_stdout(responses) -> int:
    """Print text as it arrives; a summary line (tokens, TTFT, tokens/s) on stderr."""
    import time

    import grpc

    t0 = time.perf_counter()
    last = None
    n = 0
    ttft = 0.0
    try:
        for r in responses:
            sys.stdout.write(r.text)
            sys.stdout.flush()
            n += len(r.token_ids)
            if r.index == 0 and r.timing.ttft_s:
                ttft = r.timing.ttft_s
            last = r
    except grpc.RpcError as exc:
        print(f"\nstackserve: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        responses.cancel()
        print("\nstackserve: cancelled", file=sys.stderr)
        return 130
    wall = time.perf_counter() - t0
    sys.stdout.write("\n")
    if last is not None:
        decode = wall - ttft if n > 1 else wall
        rate = (n - 1) / decode if n > 1 and decode > 0 else 0.0
        print(f"[{last.finish_reason}] {last.usage.prompt_tokens} prompt + {last.usage.completion_tokens} generated "
              f"tokens; TTFT {ttft * 1e3:.0f} ms, {rate:.1f} tokens/s", file=sys.stderr)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from server.client import LLMClient

    with LLMClient(args.address) as client:
        return _stream_to_stdout(
            client.generate(args.prompt, model=args.model, timeout=args.timeout, **_sampling_args(args))
        )


def cmd_chat(args: argparse.Namespace) -> int:
    from server.client import LLMClient

    messages = [("system", args.system)] if args.system else []
    messages.append(("user", args.message))
    with LLMClient(args.address) as client:
        return _stream_to_stdout(
            client.chat(messages, model=args.model, timeout=args.timeout, **_sampling_args(args))
        )


def add_generate_chat(sub: Subparsers) -> None:
    for name, help_text in (("generate", "stream a completion of a raw prompt (LLMService.Generate)"),
                            ("chat", "stream the model's chat answer to a message (LLMService.Chat)")):
        gp = add_command(sub, name, help=help_text)
        if name == "generate":
            gp.add_argument("prompt")
            gp.set_defaults(func=cmd_generate)
        else:
            gp.add_argument("message")
            gp.add_argument("--system", help="a system message before yours")
            gp.set_defaults(func=cmd_chat)
        gp.add_argument("--address", help=ADDRESS_HELP)
        gp.add_argument("--model", default="", help="served model name (default: the server's)")
        gp.add_argument("--max-tokens", type=int)
        gp.add_argument("--temperature", type=float, help="0 = greedy (server default 1)")
        gp.add_argument("--top-k", type=int)
        gp.add_argument("--top-p", type=float)
        gp.add_argument("--repetition-penalty", type=float)
        gp.add_argument("--seed", type=int)
        gp.add_argument("--stop", action="append", help="stop string (repeatable)")
        gp.add_argument("--ignore-eos", action="store_true")
        gp.add_argument("--timeout", type=float, default=300.0, help="deadline in seconds")
