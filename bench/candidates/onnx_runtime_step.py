"""Run the exported step graph (server/llm/backends/onnx_export.py) with ONNX Runtime, one sequence at a time.

Used to test the export and to measure the ONNX Runtime candidates in bench/llm_candidates.py; not
a serving backend (no continuous batching, no slot cache): prefill runs the prompt as one [1, T]
step, then each decode step feeds ``present_*`` back as ``past_*``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OrtLlamaStep:
    def __init__(self, onnx_path: str | Path, threads: int = 2) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        past = {i.name: i for i in self.session.get_inputs()}["past_key"]
        self.n_layers, _, self.n_kv_heads, _, self.head_dim = past.shape
        self.kv_dtype = np.float16 if past.type == "tensor(float16)" else np.float32
        self.reset()

    def reset(self) -> None:
        shape = (self.n_layers, 1, self.n_kv_heads, 0, self.head_dim)
        self.past_key = np.zeros(shape, self.kv_dtype)
        self.past_value = np.zeros(shape, self.kv_dtype)

    @property
    def length(self) -> int:
        return int(self.past_key.shape[3])

    def step(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """Append ``ids`` to the sequence; returns the graph's logits [T or 1, vocab] (float32)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(1, -1)
        p, t = self.length, ids.shape[1]
        logits, self.past_key, self.past_value = self.session.run(
            None,
            {
                "input_ids": ids,
                "position_ids": np.arange(p, p + t, dtype=np.int64)[None],
                "attention_mask": np.ones((1, p + t), np.int64),
                "past_key": self.past_key,
                "past_value": self.past_value,
            },
        )
        return logits[0]

    def prefill_logits(self, ids: list[int]) -> np.ndarray:
        """Logits of a fresh sequence's prompt (all rows, or the last one for a last-only export)."""
        self.reset()
        return self.step(ids)

    def generate_greedy(self, ids: list[int], n: int) -> list[int]:
        """Prefill ``ids`` then decode ``n`` tokens greedily; returns the new tokens."""
        nxt = int(self.prefill_logits(ids)[-1].argmax())
        out = [nxt]
        for _ in range(n - 1):
            nxt = int(self.step([nxt])[-1].argmax())
            out.append(nxt)
        return out
