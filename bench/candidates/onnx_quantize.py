"""ONNX Runtime quantizations of our exported step graph (server/llm/backends/onnx_export.py):
candidates ``bench/llm_candidates.py`` measures against the cpu-int4 backend, not served.

* ``quantize_onnx_int8``: ONNX Runtime ``quantize_dynamic``, weights int8 per output channel
  (symmetric), activations quantized per call to uint8 (``DynamicQuantizeLinear`` +
  ``MatMulInteger``); the embedding ``Gather`` stays fp32.
* ``quantize_onnx_int4``: ``MatMulNBits`` (blocks of 32 along K, asymmetric, int8 activations
  inside the kernel) from ``onnxruntime.quantization.matmul_nbits_quantizer``, head int8. The
  quantizer imports ``onnx_ir`` (a dependency of ``onnxscript``), not a dependency of onnxruntime:
  ``int4_available()`` says whether it can run.
* ``gguf_matmulnbits``: ``MatMulNBits`` holding the GGUF's own Q4_1 / Q8_0 blocks, no
  re-quantization (exact, but ORT's float-zero-point path is slow).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from server.llm.backends.onnx_export import weight_matmuls
from server.llm.gguf_weights import LlamaWeights


def _cpu_has_vnni() -> bool:
    """AVX-512 VNNI or AVX-VNNI, read from /proc/cpuinfo (False where it cannot be read)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def quantize_onnx_int8(src: str | Path, dst: str | Path) -> Path:
    """ONNX Runtime dynamic quantization: int8 per-channel weights, uint8 activations per call.

    Without VNNI, ONNX Runtime's u8 x s8 kernels sum pairs of products in int16 (``vpmaddubsw``)
    and saturate: measured on an AVX2-only EPYC, logits cosine to fp32 fell to 0.948 (0.99+
    with VNNI). Weights then use 7 bits (``reduce_range``), which keeps the pair sums in range.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [n.name for n in weight_matmuls(onnx.load(str(src), load_external_data=False))]
    quantize_dynamic(
        str(src), str(dst), op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes,
        per_channel=True, weight_type=QuantType.QInt8, reduce_range=not _cpu_has_vnni(),
        extra_options={"MatMulConstBOnly": True},
    )
    return Path(dst)


def int4_available() -> tuple[bool, str]:
    """MatMulNBits quantizer importable? (It needs ``onnx_ir``, installed with ``onnxscript``.)"""
    try:
        from onnxruntime.quantization import matmul_nbits_quantizer  # noqa: F401
    except ImportError as exc:
        return False, f"onnxruntime.quantization.matmul_nbits_quantizer unavailable: {exc}"
    return True, ""


def quantize_onnx_int4(src: str | Path, dst: str | Path, block_size: int = 32, head: str = "int8") -> Path:
    """Weight-only int4 ``MatMulNBits`` on the layers: asymmetric blocks of ``block_size`` along K
    (the Q4_1 layout), ``accuracy_level=4`` (int8 activations inside the kernel, like our C++ step).

    ``head``: the tied LM head is Q8_0 in the GGUF, and int4 there costs greedy agreement, so by
    default it gets ``quantize_dynamic`` int8 per channel instead (``"int4"`` or ``"fp32"`` to choose).
    """
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    if head not in ("int8", "int4", "fp32"):
        raise ValueError(f"head must be 'int8', 'int4' or 'fp32', not {head!r}")
    model = onnx.load(str(src))
    head_nodes = [n.name for n in weight_matmuls(model) if n.input[1] == "lm_head_t"]
    logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = logger.level
    logger.setLevel(logging.WARNING)  # it logs one INFO line per node it skips
    try:
        q = MatMulNBitsQuantizer(model, block_size=block_size, is_symmetric=False, accuracy_level=4,
                                 nodes_to_exclude=[] if head == "int4" else head_nodes)
        q.process()
    finally:
        logger.setLevel(level)
    if head != "int8":
        q.model.save_model_to_file(str(dst), use_external_data_format=False)
        return Path(dst)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "int4_layers.onnx"
        q.model.save_model_to_file(str(mid), use_external_data_format=False)
        del q, model
        quantize_dynamic(str(mid), str(dst), op_types_to_quantize=["MatMul"], nodes_to_quantize=head_nodes,
                         per_channel=True, weight_type=QuantType.QInt8, reduce_range=not _cpu_has_vnni(),
                         extra_options={"MatMulConstBOnly": True})
    return Path(dst)


def _nbits_tensors(w, name: str) -> tuple[list, dict]:
    """A GGUF block weight as MatMulNBits (B, scales, zero_points) initializers, values unchanged.

    MatMulNBits computes (q - zp) * scale per block of 32 along K, q packed two per byte in element
    order (element 2i low nibble, 2i+1 high). Q4_1 (q * d + m) becomes zp = -m / d as a *float*
    zero point (exact); Q8_0 (int8 q * d) becomes bits=8 with q + 128 and zp = 128.
    """
    from onnx import numpy_helper

    from kernels.quant_reference import GROUP, Int4Weight

    n, k = w.shape
    g = k // GROUP
    d = w.scales.reshape(-1).numpy().astype(np.float32)
    if isinstance(w, Int4Weight):
        q = w.qweight.view(n, g, GROUP // 2)
        vals = torch.cat([q & 15, q >> 4], -1)  # [N, G, 32] in element order
        packed = (vals[..., 0::2] | (vals[..., 1::2] << 4)).to(torch.uint8).numpy()
        m = w.mins.reshape(-1).numpy().astype(np.float32)
        safe = np.where(d == 0, 1.0, d).astype(np.float32)
        if np.any(d == 0):  # a constant block: q's are irrelevant, make every q 0 and put the value in zp
            packed = packed.copy()
            packed.reshape(n * g, -1)[d == 0] = 0
        zp = np.where(d == 0, -m, -m / safe).astype(np.float32)
        scale = safe
        bits = 4
    else:
        packed = (w.qweight.view(n, g, GROUP).to(torch.int16) + 128).to(torch.uint8).numpy()
        zp = np.full(n * g, 128, np.uint8)
        scale = d
        bits = 8
    inits = [numpy_helper.from_array(packed, name + "_B"), numpy_helper.from_array(scale, name + "_scales"),
             numpy_helper.from_array(zp, name + "_zp")]
    return inits, {"K": k, "N": n, "bits": bits, "block_size": GROUP}


def gguf_matmulnbits(weights: LlamaWeights, src: str | Path, dst: str | Path, accuracy_level: int = 4) -> Path:
    """The fp32 export with every weight MatMul replaced by ``MatMulNBits`` on the GGUF's own blocks.

    No re-quantization: layers keep their Q4_1 numbers (4-bit, float zero points), the tied head
    its Q8_0 numbers (8-bit) — the same weights our C++ ``cpu-int4`` step reads. ``src`` must be an
    export of the same ``weights``. (The embedding Gather stays fp32.)
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    by_name = {"lm_head_t": weights.embedding}
    for i, L in enumerate(weights.layers):
        by_name.update({f"l{i}_qkv_t": L.qkv, f"l{i}_o_t": L.o, f"l{i}_gate_up_t": L.gate_up,
                        f"l{i}_down_t": L.down})
    inits = {t.name: t for t in model.graph.initializer}
    new_nodes = []
    for node in model.graph.node:
        name = node.input[1] if node.op_type == "MatMul" else None
        if name in by_name and name in inits:
            tensors, attrs = _nbits_tensors(by_name[name], name)
            if [attrs["K"], attrs["N"]] != list(inits[name].dims):
                raise ValueError(f"{name}: GGUF weight {attrs['N']}x{attrs['K']} does not match the graph")
            model.graph.initializer.remove(inits[name])
            model.graph.initializer.extend(tensors)
            node = helper.make_node("MatMulNBits", [node.input[0], *(t.name for t in tensors)], list(node.output),
                                    name=node.name + "_nbits", domain="com.microsoft",
                                    accuracy_level=accuracy_level, **attrs)
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return Path(dst)


def weight_bytes(path: str | Path) -> int:
    """Bytes of the graph's initializers (weights, RoPE tables): the 'MB of weights' of a variant."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return sum(len(t.raw_data) if t.HasField("raw_data") else int(numpy_helper.to_array(t).nbytes)
               for t in model.graph.initializer)
