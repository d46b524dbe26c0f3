// One whole Llama forward step (all layers) for weight-only quantized GGUF models (Q4_1 linears,
// Q8_0 tied embedding / LM head), in one Python -> C++ call: kernels.cpp._llm_step.
//
// Why: PyTorch eager spends ~7 ms per token on per-op overhead for SmolLM2-135M, more than the
// arithmetic; one C++ call per engine step removes that and lets the quantized matmuls read the
// 4-bit weights directly. The Python side is kernels/llm_step.py (validation, StepBatch mapping).
//
// Design, measured on the 2-core AMD EPYC (Zen 4) development machine:
//   * Weights are repacked once, at construction, into tiles of 16 output rows. A (tile, group of
//     32 inputs) record holds the 16 rows' quants with 4 consecutive inputs per row side by side
//     (so one VPDPBUSD multiplies 4 inputs of 16 rows by 4 broadcast activations and every lane
//     accumulates a different output: no horizontal sums), followed by the 16 scales (and mins).
//     For Q4_1 the record is a plain 4-byte transpose of GGUF's bytes: the low nibbles are
//     inputs 4j..4j+3, the high nibbles 16+4j..16+4j+3. Scales are stored as fp16 when every
//     scale of the matrix converts exactly (GGUF's are fp16 to begin with), which cuts a decode
//     step's memory traffic from ~112 MB to ~96 MB; otherwise as fp32.
//   * Activations are quantized to int8 per block of 32 (scale = absmax / 127) like llama.cpp's
//     Q8_1; the Q4_1 `min` term uses the block sum of the int8 values. Q8_0 x Q8_0 uses the sign
//     trick (|w| unsigned, x negated where w < 0). A block holding NaN or +-inf gets a NaN scale,
//     so every output of that row is NaN (never a crash or silent garbage).
//   * int8x2 (the default; "int8" keeps one term): a second int8 term per block holds the residual
//     x - d q, quantized with its own scale (~d / 254); W x ~= d1 (W q1) + d2 (W q2) + min terms.
//     The kernels treat the two terms like two activation rows that share each expanded weight
//     block (weights are still read once), summing both into the one output row. It costs ~2x the
//     dot products (decode ~0.75x, prefill ~0.67x the int8 speed) and makes greedy output follow
//     the fp32 forward (50 prompts x 32 tokens: 100% vs 64% with int8; the inputs of the down
//     projection have huge outliers, and the LM head needs it too: int8 head alone gives 82%).
//   * Tiles are stored in quads (4 tiles' records of a group side by side), so a single-row matmul
//     reads one sequential stream. A microkernel computes MR rows x NV tiles, reusing each unpacked
//     weight vector for MR rows; single rows (decode) use MR=1 x NV=4 with split accumulators to
//     hide VPDPBUSD latency. Decode is memory bound: ~96 MB per token at ~21 GB/s, close to what a
//     plain 2-thread streaming read reaches on this VM (22-25 GB/s).
//   * The step is an SPMD program of phases (~5 per layer for decode: qkv, attention, o, gate_up,
//     down; norms and SwiGLU of few rows are recomputed by every thread instead of being a phase)
//     whose work items OpenMP's threads share through atomic counters, each streaming its own
//     contiguous share first and then stealing (see "Parallel execution" for why not barriers).
//     Attention is an online softmax over blocks of 16 keys whose 16 dot products are reduced
//     together (transpose-reduce); decode rows write their own K/V in the attention phase.
//   * AVX-512 and AVX2 code lives in functions with a target attribute; the module itself is
//     compiled with portable flags and picks at run time: AVX-512 VNNI, else AVX2 (matmuls with
//     maddubs, and the per-row work of avx2_rows.h), else scalar code (same packed layout, same
//     activation quantization, so results agree to float rounding); set_force_avx2 and
//     set_force_scalar pick a lower path (tests use them).
//
// Layout: this file holds the Python-facing parts (array checks, PackedLinear, the Llama model and
// the module definition); the kernels live in headers under kernels/cpp/llm_step/, one per concern,
// included only here (internal linkage, one translation unit):
//   common.h       includes, target attributes, block constants, run-time ISA choice
//   weights.h      AlignedBuf, fp16 helpers, Packed (the tile layout), pack_q4 / pack_q8, q8_row
//   activations.h  QX, int8 / int8x2 block and row quantization, the RMS-norm factor
//   gemm.h         AVX-512 VNNI micro-kernels and KernelTable, AVX2 and scalar paths, work items
//   amx.h          Intel AMX int8 tiles for matmuls of two or more rows (bit-identical to VNNI)
//   team.h         StealTeam / OmpTeam / CountTeam and run_parallel
//   attention.h    exp, silu_mul_quant, attend_avx / attend_scalar, rope_head
//   avx2_rows.h    the AVX2 path of that per-row work (quantization, norms, SwiGLU, attention)
//   row_dispatch.h the per-row work dispatched on the call's path (Isa: AVX-512, AVX2, scalar)

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// In dependency order (each header also includes what it uses).
#include "llm_step/common.h"
#include "llm_step/weights.h"
#include "llm_step/activations.h"
#include "llm_step/gemm.h"
#include "llm_step/amx.h"
#include "llm_step/team.h"
#include "llm_step/attention.h"
#include "llm_step/avx2_rows.h"
#include "llm_step/row_dispatch.h"

namespace {

inline double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Up to this many rows, each thread quantizes all rows itself (Llama::run: no phase of its own).
constexpr int64_t kPrivateRows = 4;

// ----------------------------------------------------------------------------------------------
// Array checks (the Python wrapper validates first; these keep C++ from ever reading out of bounds)

void check_array(const py::array& a, const py::dtype& dt, int ndim, const char* name) {
  if (!a.dtype().is(dt) && !a.dtype().equal(dt))
    throw py::value_error(std::string(name) + ": expected dtype " + std::string(py::str(dt)) + ", got " +
                          std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                          std::to_string(a.ndim()));
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": must be C-contiguous");
}

template <class T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}

// ----------------------------------------------------------------------------------------------
// The per-row operations on their own, on the path the switches choose now (property tests hold
// every path to the scalar one on random rows: row_dispatch.h)

// x [M, K] (K a multiple of 32) * mul (* w [K]) quantized per 32-block: (q [M, parts*K] int8,
// d [M, parts*K/32], ds [M, parts*K/32]); parts 2 adds the residual term (int8x2).
py::tuple rows_quantize(const py::array& x, float mul, const py::object& w, int parts) {
  check_array(x, py::dtype::of<float>(), 2, "x");
  const int64_t M = x.shape(0), K = x.shape(1);
  if (K % QK != 0) throw py::value_error("x: columns must be a multiple of 32");
  if (parts != 1 && parts != 2) throw py::value_error("parts must be 1 or 2");
  const float* wp = nullptr;
  py::array wa;
  if (!w.is_none()) {
    wa = w.cast<py::array>();
    check_array(wa, py::dtype::of<float>(), 1, "w");
    if (wa.shape(0) != K) throw py::value_error("w: expected " + std::to_string(K) + " values");
    wp = cptr<float>(wa);
  }
  py::array_t<int8_t> q({M, K * parts});
  py::array_t<float> d({M, K * parts / QK}), ds({M, K * parts / QK});
  const QX qx{q.mutable_data(), d.mutable_data(), ds.mutable_data(), K * parts, K * parts / QK, parts == 2 ? K : 0};
  const Isa isa = row_isa();
  for (int64_t m = 0; m < M; ++m) quant_row(isa, cptr<float>(x) + m * K, K, mul, wp, qx, m);
  return py::make_tuple(q, d, ds);
}

// silu(gate) * up quantized like rows_quantize (gate, up [M, F], F a multiple of 32).
py::tuple rows_silu_mul_quantize(const py::array& gate, const py::array& up, int parts) {
  check_array(gate, py::dtype::of<float>(), 2, "gate");
  check_array(up, py::dtype::of<float>(), 2, "up");
  const int64_t M = gate.shape(0), F = gate.shape(1);
  if (up.shape(0) != M || up.shape(1) != F) throw py::value_error("up: expected the shape of gate");
  if (F % QK != 0) throw py::value_error("gate: columns must be a multiple of 32");
  if (parts != 1 && parts != 2) throw py::value_error("parts must be 1 or 2");
  std::vector<float> gu(static_cast<size_t>(2 * F));
  py::array_t<int8_t> q({M, F * parts});
  py::array_t<float> d({M, F * parts / QK}), ds({M, F * parts / QK});
  const QX qx{q.mutable_data(), d.mutable_data(), ds.mutable_data(), F * parts, F * parts / QK, parts == 2 ? F : 0};
  const Isa isa = row_isa();
  for (int64_t m = 0; m < M; ++m) silu_mul_quant(isa, cptr<float>(gate) + m * F, cptr<float>(up) + m * F, F, qx, m);
  return py::make_tuple(q, d, ds);
}

// The RMS-norm factor 1 / sqrt(mean(x^2) + eps) of each row of x [M, K].
py::array_t<float> rows_rms_inv(const py::array& x, float eps) {
  check_array(x, py::dtype::of<float>(), 2, "x");
  if (x.shape(1) == 0) throw py::value_error("x: rows must hold at least one value (an RMS of nothing is undefined)");
  py::array_t<float> out(x.shape(0));
  const Isa isa = row_isa();
  for (int64_t m = 0; m < x.shape(0); ++m) out.mutable_data()[m] = rms_inv(isa, cptr<float>(x) + m * x.shape(1), x.shape(1), eps);
  return out;
}

// gelu_tanh(gate) * up, elementwise, rows [M, F].
py::array_t<float> rows_gelu_tanh_mul(const py::array& gate, const py::array& up) {
  check_array(gate, py::dtype::of<float>(), 2, "gate");
  check_array(up, py::dtype::of<float>(), 2, "up");
  if (up.shape(0) != gate.shape(0) || up.shape(1) != gate.shape(1)) throw py::value_error("up: expected the shape of gate");
  py::array_t<float> out({gate.shape(0), gate.shape(1)});
  const Isa isa = row_isa();
  for (int64_t m = 0; m < gate.shape(0); ++m)
    gelu_tanh_mul(isa, cptr<float>(gate) + m * gate.shape(1), cptr<float>(up) + m * gate.shape(1), gate.shape(1),
                  out.mutable_data() + m * gate.shape(1));
  return out;
}

int block_shift(int64_t bs, const char* name) {
  if (bs < 1 || (bs & (bs - 1)) != 0)
    throw py::value_error(std::string(name) + ": block size must be a power of two, got " + std::to_string(bs));
  int shift = 0;
  while ((int64_t{1} << shift) < bs) ++shift;
  return shift;
}

// softmax(q . K^T) V over keys lo..lo+n-1 plus the query's own key kx / value vx [hd] (q already
// scaled), as one attention head of a step computes it, K/V stored as fp16 like the cache. K/V are
// either rows [n, hd] (blocks None) or a paged pool [n_blocks, block, hd] read through `blocks`.
py::array_t<float> rows_attend(const py::array& q, const py::array& K, const py::array& V, const py::array& kx,
                               const py::array& vx, const py::object& blocks, int64_t n, int64_t lo) {
  for (auto [a, name] : {std::pair{&q, "q"}, std::pair{&kx, "kx"}, std::pair{&vx, "vx"}})
    check_array(*a, py::dtype::of<float>(), 1, name);
  const int64_t hd = q.shape(0);
  if (hd < 1 || hd > 512) throw py::value_error("q: head dim must be in [1, 512]");
  if (kx.shape(0) != hd || vx.shape(0) != hd) throw py::value_error("kx, vx [hd] must match q [hd]");
  const Isa isa = row_isa();
  auto halves = [&](const py::array& a) {  // the cache's storage: fp16, rounded as the step rounds
    std::vector<uint16_t> h(static_cast<size_t>(a.size()));
    to_half(isa, cptr<float>(a), a.size(), h.data());
    return h;
  };
  std::vector<int64_t> contiguous;
  int64_t stride = 16 * hd;
  int shift = 4;
  const int64_t* bt = nullptr;
  if (blocks.is_none()) {
    check_array(K, py::dtype::of<float>(), 2, "K");
    check_array(V, py::dtype::of<float>(), 2, "V");
    n = K.shape(0);
    lo = 0;
    if (K.shape(1) != hd || V.shape(0) != n || V.shape(1) != hd)
      throw py::value_error("K, V [n, hd] must match q [hd]");
    for (int64_t b = 0; b * 16 < n; ++b) contiguous.push_back(b);
    bt = contiguous.data();
  } else {
    const auto table = blocks.cast<py::array>();
    check_array(table, py::dtype::of<int64_t>(), 1, "blocks");
    check_array(K, py::dtype::of<float>(), 3, "K");
    check_array(V, py::dtype::of<float>(), 3, "V");
    const int64_t nb = K.shape(0), bs = K.shape(1);
    shift = block_shift(bs, "K");
    if (K.shape(2) != hd || V.shape(0) != nb || V.shape(1) != bs || V.shape(2) != hd)
      throw py::value_error("K, V [n_blocks, block, hd] must match each other and q [hd]");
    if (n < 0 || lo < 0) throw py::value_error("n and lo must be >= 0");
    const int64_t need = n ? ((lo + n - 1) >> shift) + 1 : 0;
    if (table.shape(0) < need) throw py::value_error("blocks: too short for positions lo..lo+n-1");
    bt = cptr<int64_t>(table);
    for (int64_t i = lo >> shift; i < need; ++i)
      if (bt[i] < 0 || bt[i] >= nb) throw py::value_error("blocks: entry out of range of the pool");
    stride = bs * hd;
  }
  const auto kh = halves(K), vh = halves(V), kxh = halves(kx), vxh = halves(vx);
  const Pages pk{kh.data(), bt, stride, shift, hd}, pv{vh.data(), bt, stride, shift, hd};
  py::array_t<float> out(hd);
  attend(isa, cptr<float>(q), pk, pv, lo, n, kxh.data(), vxh.data(), hd, out.mutable_data());
  return out;
}

// fp16 bits of float32 values as the KV cache stores them (tests: every path rounds alike).
py::array_t<uint16_t> rows_to_half(const py::array& x) {
  check_array(x, py::dtype::of<float>(), 1, "x");
  py::array_t<uint16_t> out(x.shape(0));
  to_half(row_isa(), cptr<float>(x), x.shape(0), out.mutable_data());
  return out;
}

// ----------------------------------------------------------------------------------------------
// Standalone packed linear (tests and benchmarks)

int activation_parts(const std::string& name) {
  if (name == "int8") return 1;
  if (name == "int8x2") return 2;
  throw py::value_error("activations must be 'int8x2' or 'int8', got '" + name + "'");
}

class PackedLinear {
 public:
  explicit PackedLinear(Packed p) : P_(std::move(p)) {}

  py::array_t<float> matmul(const py::array& x, int num_threads, const std::string& activations) {
    const int parts = activation_parts(activations);
    check_array(x, py::dtype::of<float>(), 2, "x");
    const int64_t M = x.shape(0), K = x.shape(1);
    if (K != P_.k)
      throw py::value_error("x: expected " + std::to_string(P_.k) + " columns, got " + std::to_string(K));
    py::array_t<float> y({M, P_.n});
    if (M == 0) return y;
    const float* xp = cptr<float>(x);
    float* yp = y.mutable_data();
    const int nt = num_threads > 0 ? num_threads : g_num_threads.load();
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      const int64_t G = K / QK;
      xq_.reserve(static_cast<size_t>(M * K * parts));
      xd_.reserve(static_cast<size_t>(M * G * parts) * 4);
      xds_.reserve(static_cast<size_t>(M * G * parts) * 4);
      QX qx{xq_.as<int8_t>(), xd_.as<float>(), xds_.as<float>(), K * parts, G * parts, parts == 2 ? K : 0};
      const Isa isa = row_isa();
      const bool avx = isa == Isa::kAvx512;
      const Packed& W = P_;
      run_parallel(nt, [&](auto& team) {
        team.phase(M, [&](int64_t m) { quant_row(isa, xp + m * K, K, 1.f, nullptr, qx, m); });
        team.phase(gemm_items(W, M), [&](int64_t i) { gemm_item(avx, W, qx, M, yp, W.n, false, i); });
      });
    }
    return y;
  }

  int64_t n() const { return P_.n; }
  int64_t k() const { return P_.k; }
  int bits() const { return P_.bits; }
  bool f16_scales() const { return P_.f16; }
  size_t nbytes() const { return P_.nbytes(); }

 private:
  Packed P_;
  AlignedBuf xq_, xd_, xds_;
  std::mutex mu_;
};

std::unique_ptr<PackedLinear> make_q4(const py::array& qweight, const py::array& scales, const py::array& mins) {
  check_array(qweight, py::dtype::of<uint8_t>(), 2, "qweight");
  check_array(scales, py::dtype::of<float>(), 2, "scales");
  check_array(mins, py::dtype::of<float>(), 2, "mins");
  const int64_t n = qweight.shape(0), k = qweight.shape(1) * 2;
  check_dims(n, k, "qweight");
  if (scales.shape(0) != n || scales.shape(1) != k / QK)
    throw py::value_error("scales: expected shape [" + std::to_string(n) + ", " + std::to_string(k / QK) + "]");
  if (mins.shape(0) != n || mins.shape(1) != k / QK)
    throw py::value_error("mins: expected shape [" + std::to_string(n) + ", " + std::to_string(k / QK) + "]");
  return std::make_unique<PackedLinear>(pack_q4(cptr<uint8_t>(qweight), cptr<float>(scales), cptr<float>(mins), n, k));
}

std::unique_ptr<PackedLinear> make_q8(const py::array& qweight, const py::array& scales) {
  check_array(qweight, py::dtype::of<int8_t>(), 2, "qweight");
  check_array(scales, py::dtype::of<float>(), 2, "scales");
  const int64_t n = qweight.shape(0), k = qweight.shape(1);
  check_dims(n, k, "qweight");
  if (scales.shape(0) != n || scales.shape(1) != k / QK)
    throw py::value_error("scales: expected shape [" + std::to_string(n) + ", " + std::to_string(k / QK) + "]");
  return std::make_unique<PackedLinear>(pack_q8(cptr<int8_t>(qweight), cptr<float>(scales), n, k));
}

// ----------------------------------------------------------------------------------------------
// The model

struct Layer {
  std::vector<float> attn_norm, ffn_norm;
  Packed qkv, o, gate_up, down;
  // Gemma 3 only (Llama::enable_gemma3): RMSNorm weights over the head dim for q and k, and the
  // "sandwich" norms on the attention and feed-forward outputs before the residual add.
  std::vector<float> q_norm, k_norm, post_attn_norm, post_ffn_norm;
};

// A Q4_1 matrix (mins given) or a Q8_0 one (mins pointer 0): the Gemma 3 GGUF mixes both per layer.
Packed pack_any(uintptr_t q, uintptr_t s, uintptr_t m, int64_t n, int64_t k) {
  if (m == 0) return pack_q8(reinterpret_cast<const int8_t*>(q), reinterpret_cast<const float*>(s), n, k);
  return pack_q4(reinterpret_cast<const uint8_t*>(q), reinterpret_cast<const float*>(s),
                 reinterpret_cast<const float*>(m), n, k);
}

// Phase timers (thread 0, wall clock from the end of one phase to the end of the next), for profiling.
enum Phase { kEmbed, kNorm, kQkv, kRope, kAttn, kO, kGateUp, kSilu, kDown, kHead, kNumPhases };
const char* const kPhaseNames[kNumPhases] = {"embed", "norm_quant", "qkv", "rope_kv", "attention",
                                             "o",     "gate_up",    "silu", "down",    "head"};

class Llama {
 public:
  Llama(int64_t n_layers, int64_t hidden, int64_t ffn, int64_t n_heads, int64_t n_kv_heads, int64_t vocab,
        double rope_theta, double rms_eps, uintptr_t emb_q, uintptr_t emb_s, uintptr_t final_norm,
        const std::vector<uintptr_t>& attn_norm, const std::vector<uintptr_t>& ffn_norm,
        const std::vector<uintptr_t>& qkv_q, const std::vector<uintptr_t>& qkv_s, const std::vector<uintptr_t>& qkv_m,
        const std::vector<uintptr_t>& o_q, const std::vector<uintptr_t>& o_s, const std::vector<uintptr_t>& o_m,
        const std::vector<uintptr_t>& gu_q, const std::vector<uintptr_t>& gu_s, const std::vector<uintptr_t>& gu_m,
        const std::vector<uintptr_t>& dn_q, const std::vector<uintptr_t>& dn_s, const std::vector<uintptr_t>& dn_m,
        const std::string& activations, const std::string& head_activations, int64_t head_dim)
      : parts_(activation_parts(activations)), head_parts_(activation_parts(head_activations)), L_(n_layers), H_(hidden), F_(ffn), NH_(n_heads), NKV_(n_kv_heads), V_(vocab), theta_(rope_theta),
        eps_(static_cast<float>(rms_eps)) {
    if (L_ <= 0 || H_ <= 0 || F_ <= 0 || NH_ <= 0 || NKV_ <= 0 || V_ <= 0)
      throw py::value_error("config: all sizes must be positive");
    if (head_dim < 0) throw py::value_error("config: head_dim must be >= 0 (0: hidden / n_heads)");
    if ((head_dim == 0 && H_ % NH_ != 0) || NH_ % NKV_ != 0)
      throw py::value_error("config: hidden % n_heads and n_heads % n_kv_heads");
    HD_ = head_dim > 0 ? head_dim : H_ / NH_;
    if (HD_ % 2 != 0 || HD_ > 512) throw py::value_error("config: head_dim must be even and <= 512");
    if (H_ % QK != 0 || F_ % QK != 0) throw py::value_error("config: hidden and ffn must be multiples of 32");
    const size_t nl = static_cast<size_t>(L_);
    for (const auto* v : {&attn_norm, &ffn_norm, &qkv_q, &qkv_s, &qkv_m, &o_q, &o_s, &o_m, &gu_q, &gu_s, &gu_m, &dn_q,
                          &dn_s, &dn_m})
      if (v->size() != nl) throw py::value_error("every per-layer pointer list must have n_layers entries");
    QKVN_ = (NH_ + 2 * NKV_) * HD_;
    AO_ = NH_ * HD_;
    if (AO_ % QK != 0 && AO_ != H_) throw py::value_error("config: n_heads * head_dim must be a multiple of 32");
    layers_.resize(nl);
    for (size_t i = 0; i < nl; ++i) {
      Layer& Ly = layers_[i];
      const auto* an = reinterpret_cast<const float*>(attn_norm[i]);
      const auto* fn = reinterpret_cast<const float*>(ffn_norm[i]);
      Ly.attn_norm.assign(an, an + H_);
      Ly.ffn_norm.assign(fn, fn + H_);
      Ly.qkv = pack_any(qkv_q[i], qkv_s[i], qkv_m[i], QKVN_, H_);
      Ly.o = pack_any(o_q[i], o_s[i], o_m[i], H_, AO_);
      Ly.gate_up = pack_any(gu_q[i], gu_s[i], gu_m[i], 2 * F_, H_);
      Ly.down = pack_any(dn_q[i], dn_s[i], dn_m[i], H_, F_);
    }
    head_ = pack_q8(reinterpret_cast<const int8_t*>(emb_q), reinterpret_cast<const float*>(emb_s), V_, H_);
    const auto* fnorm = reinterpret_cast<const float*>(final_norm);
    final_norm_.assign(fnorm, fnorm + H_);
    inv_freq_ = inv_freq(theta_);
  }

  // Gemma 3 (server/llm/gemma3.py has the math): the embedding scaled by sqrt(hidden), q/k RMSNorm
  // per head before RoPE, post-attention and post-feed-forward norms on each branch before its
  // residual add, GeGLU (tanh GELU) instead of SwiGLU, and every layer with `sliding[l]` attending
  // only to the last `window` positions with RoPE base `local_theta`. Norm weights multiply
  // directly (the GGUF stores Gemma's 1 + w).
  void enable_gemma3(const std::vector<uintptr_t>& q_norm, const std::vector<uintptr_t>& k_norm,
                     const std::vector<uintptr_t>& post_attn_norm, const std::vector<uintptr_t>& post_ffn_norm,
                     const std::vector<bool>& sliding, int64_t window, double local_theta, double embed_scale) {
    const size_t nl = static_cast<size_t>(L_);
    for (const auto* v : {&q_norm, &k_norm, &post_attn_norm, &post_ffn_norm})
      if (v->size() != nl) throw py::value_error("every per-layer pointer list must have n_layers entries");
    if (sliding.size() != nl) throw py::value_error("sliding: must have n_layers entries");
    if (window <= 0) throw py::value_error("sliding window must be positive");
    if (!(local_theta > 0)) throw py::value_error("local rope theta must be positive");
    std::lock_guard<std::mutex> lock(mu_);
    auto take = [](uintptr_t p, int64_t n) {
      const auto* f = reinterpret_cast<const float*>(p);
      return std::vector<float>(f, f + n);
    };
    for (size_t i = 0; i < nl; ++i) {
      Layer& Ly = layers_[i];
      Ly.q_norm = take(q_norm[i], HD_);
      Ly.k_norm = take(k_norm[i], HD_);
      Ly.post_attn_norm = take(post_attn_norm[i], H_);
      Ly.post_ffn_norm = take(post_ffn_norm[i], H_);
    }
    sliding_ = sliding;
    window_ = window;
    local_inv_freq_ = inv_freq(local_theta);
    embed_scale_ = static_cast<float>(embed_scale);
    gemma_ = true;
    rope_len_ = 0;
  }

  // The KV cache is a pool of blocks (server/llm/kv_cache.py): k_cache/v_cache hold
  // [n_layers, n_kv_heads, n_blocks, block_size, head_dim] fp16 values and row t of the step reads and
  // writes the blocks listed in block_tables[slots[t]] (position p in entry p / block_size).
  void step(const py::array& token_ids, const py::array& positions, const py::array& slots,
            const py::array& sample_rows, uintptr_t k_cache, uintptr_t v_cache, const py::array& block_tables,
            int64_t n_blocks, int64_t block_size, const py::array& logits) {
    const auto i64 = py::dtype::of<int64_t>();
    check_array(token_ids, i64, 1, "token_ids");
    check_array(positions, i64, 1, "positions");
    check_array(slots, i64, 1, "slots");
    check_array(sample_rows, i64, 1, "sample_rows");
    check_array(block_tables, i64, 2, "block_tables");
    check_array(logits, py::dtype::of<float>(), 2, "logits");
    const int64_t T = token_ids.shape(0), R = sample_rows.shape(0);
    const int64_t S = block_tables.shape(0), MB = block_tables.shape(1);
    if (positions.shape(0) != T) throw py::value_error("positions: length differs from token_ids");
    if (slots.shape(0) != T) throw py::value_error("slots: length differs from token_ids");
    if (logits.shape(0) != R || logits.shape(1) != V_)
      throw py::value_error("logits: expected shape [" + std::to_string(R) + ", " + std::to_string(V_) + "]");
    if (!logits.writeable()) throw py::value_error("logits: must be writeable");
    if (S <= 0 || MB <= 0) throw py::value_error("block_tables: needs at least one sequence and one block");
    if (n_blocks <= 0) throw py::value_error("n_blocks must be positive");
    const int shift = block_shift(block_size, "block_size");
    const int64_t max_len = MB * block_size;
    if (!k_cache || !v_cache) throw py::value_error("k_cache/v_cache: null pointer");
    const int64_t* tok = cptr<int64_t>(token_ids);
    const int64_t* pos = cptr<int64_t>(positions);
    const int64_t* slt = cptr<int64_t>(slots);
    const int64_t* srow = cptr<int64_t>(sample_rows);
    const int64_t* bt = cptr<int64_t>(block_tables);
    int64_t max_pos = -1;
    std::vector<int64_t> seq_end(static_cast<size_t>(S), 0);  // blocks each sequence reads
    for (int64_t t = 0; t < T; ++t) {
      if (tok[t] < 0 || tok[t] >= V_)
        throw py::value_error("token_ids[" + std::to_string(t) + "]=" + std::to_string(tok[t]) +
                              " is out of range [0, " + std::to_string(V_) + ")");
      if (pos[t] < 0 || pos[t] >= max_len)
        throw py::value_error("positions[" + std::to_string(t) + "]=" + std::to_string(pos[t]) +
                              " is out of range [0, max_len=" + std::to_string(max_len) + ")");
      if (slt[t] < 0 || slt[t] >= S)
        throw py::value_error("slots[" + std::to_string(t) + "]=" + std::to_string(slt[t]) +
                              " is out of range [0, " + std::to_string(S) + " block-table rows)");
      max_pos = std::max(max_pos, pos[t]);
      seq_end[slt[t]] = std::max(seq_end[slt[t]], (pos[t] >> shift) + 1);
    }
    for (int64_t sq = 0; sq < S; ++sq)
      for (int64_t j = 0; j < seq_end[sq]; ++j)
        if (bt[sq * MB + j] < 0 || bt[sq * MB + j] >= n_blocks)
          throw py::value_error("block_tables[" + std::to_string(sq) + ", " + std::to_string(j) + "]=" +
                                std::to_string(bt[sq * MB + j]) + " is out of range [0, n_blocks=" +
                                std::to_string(n_blocks) + ")");
    for (int64_t i = 0; i < R; ++i)
      if (srow[i] < 0 || srow[i] >= T)
        throw py::value_error("sample_rows[" + std::to_string(i) + "]=" + std::to_string(srow[i]) +
                              " is out of range [0, " + std::to_string(T) + ")");
    bool distinct_slots = true;
    if (T > 1) {  // two rows writing the same cache cell would race
      std::vector<std::pair<int64_t, int64_t>> cells(static_cast<size_t>(T)), seqs(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; ++t) {
        cells[t] = {bt[slt[t] * MB + (pos[t] >> shift)], pos[t] & (block_size - 1)};
        seqs[t] = {slt[t], pos[t]};
      }
      std::sort(cells.begin(), cells.end());
      for (size_t i = 1; i < cells.size(); ++i)
        if (cells[i] == cells[i - 1])
          throw py::value_error("slots/positions: two rows write the same cell (block, offset) of the KV cache");
      std::sort(seqs.begin(), seqs.end());
      for (size_t i = 1; i < seqs.size(); ++i)
        if (seqs[i].first == seqs[i - 1].first) distinct_slots = false;
    }
    if (T == 0) return;
    float* out = static_cast<float*>(const_cast<void*>(logits.data()));
    const int nt = num_threads_ > 0 ? num_threads_ : g_num_threads.load();
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    run(T, tok, pos, slt, R, srow, reinterpret_cast<uint16_t*>(k_cache), reinterpret_cast<uint16_t*>(v_cache),
        KVLayout{bt, MB, n_blocks, block_size, shift}, max_pos, distinct_slots, out, nt);
  }

  std::string activations() const { return parts_ == 2 ? "int8x2" : "int8"; }
  std::string head_activations() const { return head_parts_ == 2 ? "int8x2" : "int8"; }
  int num_threads() const { return num_threads_; }
  void set_num_threads(int n) {
    if (n < 0) throw py::value_error("num_threads must be >= 0 (0: the module default)");
    num_threads_ = n;
  }
  void set_profiling(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    profiling_ = on;
  }
  py::dict profile(bool reset) {
    std::lock_guard<std::mutex> lock(mu_);
    py::dict d;
    for (int i = 0; i < kNumPhases; ++i) d[kPhaseNames[i]] = prof_[i];
    d["steps"] = prof_steps_;
    if (reset) {
      std::fill(std::begin(prof_), std::end(prof_), 0.0);
      prof_steps_ = 0;
    }
    return d;
  }
  size_t packed_bytes() const {
    size_t s = head_.nbytes();
    for (const auto& Ly : layers_) s += Ly.qkv.nbytes() + Ly.o.nbytes() + Ly.gate_up.nbytes() + Ly.down.nbytes();
    return s;
  }
  bool f16_scales() const {
    bool all = head_.f16;
    for (const auto& Ly : layers_) all = all && Ly.qkv.f16 && Ly.o.f16 && Ly.gate_up.f16 && Ly.down.f16;
    return all;
  }

 private:
  std::vector<double> inv_freq(double theta) const {
    std::vector<double> f(static_cast<size_t>(HD_ / 2));
    for (int64_t i = 0; i < HD_ / 2; ++i) f[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(HD_));
    return f;
  }

  static void fill_rope(const std::vector<double>& inv, int64_t n, std::vector<float>& c, std::vector<float>& s) {
    const int64_t half = static_cast<int64_t>(inv.size());
    c.resize(static_cast<size_t>(n * half));
    s.resize(static_cast<size_t>(n * half));
    for (int64_t p = 0; p < n; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(p) * inv[i];
        c[p * half + i] = static_cast<float>(std::cos(a));
        s[p * half + i] = static_cast<float>(std::sin(a));
      }
  }

  void ensure_rope(int64_t n) {
    if (n <= rope_len_) return;
    n = std::max<int64_t>({n, 2 * rope_len_, 256});
    fill_rope(inv_freq_, n, cos_, sin_);
    if (gemma_) fill_rope(local_inv_freq_, n, lcos_, lsin_);
    rope_len_ = n;
  }

  // Shared buffers, plus (for few rows) one private int8 activation buffer per thread: then every
  // thread quantizes the normed rows itself and the matmul does not wait for a phase of its own.
  void ensure_workspace(int64_t T, int64_t copies) {
    if (T <= ws_rows_ && copies <= ws_copies_) return;
    T = std::max(T, ws_rows_);
    copies = std::max(copies, ws_copies_);
    const int64_t kmax = std::max({H_, F_, AO_});
    x_.reserve(static_cast<size_t>(T * H_) * 4);
    y_.reserve(static_cast<size_t>(T * H_) * 4);
    scratch_.reserve(static_cast<size_t>(copies * F_) * 4);
    qkv_.reserve(static_cast<size_t>(T * QKVN_) * 4);
    gu_.reserve(static_cast<size_t>(T * 2 * F_) * 4);
    xq_.reserve(static_cast<size_t>(copies * T * kmax * 2));  // room for both int8x2 terms
    xd_.reserve(static_cast<size_t>(copies * T * (kmax / QK) * 2) * 4);
    xds_.reserve(static_cast<size_t>(copies * T * (kmax / QK) * 2) * 4);
    ws_rows_ = T;  // the stride between copies (qview)
    ws_copies_ = copies;
  }

  // Quantized-activation view number `copy` (0: shared) with rows of width k (int8x2: each row
  // holds its first term's k values, then the residual term's).
  QX qview(int64_t copy, int64_t k) const {
    const int64_t kmax = std::max({H_, F_, AO_}) * 2;
    return QX{xq_.as<int8_t>() + copy * ws_rows_ * kmax,
              xd_.as<float>() + copy * ws_rows_ * (kmax / QK),
              xds_.as<float>() + copy * ws_rows_ * (kmax / QK),
              k * parts_,
              k * parts_ / QK,
              parts_ == 2 ? k : 0};
  }

  // Rows with distinct slots (decode-only steps) let every attention item write its own row's K/V
  // and attend in the same phase; prefill chunks need all their rows' K/V in the cache first.
  struct KVLayout {
    const int64_t* tables;  // [sequences, MB]
    int64_t MB, NB, BS;
    int shift;
  };

  void run(int64_t T, const int64_t* tok, const int64_t* pos, const int64_t* slt, int64_t R, const int64_t* srow,
           uint16_t* kc, uint16_t* vc, const KVLayout& kv, int64_t max_pos, bool distinct_slots, float* logits,
           int nt) {
    ensure_rope(max_pos + 1);
    const bool priv = std::max(T, R) <= kPrivateRows;
    ensure_workspace(std::max(T, R), priv ? nt + 1 : 1);
    const Isa isa = row_isa();
    const bool avx = isa == Isa::kAvx512;  // the matmuls' path (gemm_item picks AVX2 or scalar otherwise)
    const bool prof = profiling_;
    const bool fused = distinct_slots;
    float* x = x_.as<float>();
    float* qkv = qkv_.as<float>();
    float* gu = gu_.as<float>();
    float* y = y_.as<float>();  // Gemma: a branch's output before its post-norm and residual add
    float* scratch = scratch_.as<float>();
    const bool gemma = gemma_;
    const QX qh = qview(0, H_);  // shared: every layer input when !priv
    const QX qa = qview(0, AO_);  // shared: attention output (o's input)
    const QX qf = qview(0, F_);
    const int64_t H = H_, F = F_, HD = HD_, NH = NH_, NKV = NKV_, QKVN = QKVN_, AO = AO_, half = HD_ / 2;
    const int64_t group = NH / NKV;
    const float qscale = 1.f / std::sqrt(static_cast<float>(HD));
    double t_prev = 0;
    double* pt = prof_;
    auto mark = [&](int tid, Phase ph) {
      if (!prof || tid != 0) return;
      const double now = wall_seconds();
      pt[ph] += now - t_prev;
      t_prev = now;
    };
    if (prof) t_prev = wall_seconds();
    // Attention items: (row, head) for few rows, so that both threads have work in a decode step
    // (a thread's consecutive heads mostly share a KV head, whose K/V then stays in L2); whole
    // rows for many rows, the last (longest) rows first so that the stealing evens them out.
    const bool by_row = T >= 8;
    const int64_t n_att = by_row ? T : T * NH;

    auto program = [&](auto& team) {
      const int tid = team.tid;
      const QX ph = priv && tid >= 0 ? qview(1 + tid, H) : qh;  // this thread's matmul input (width H)
      const QX pf = priv && tid >= 0 ? qview(1 + tid, F) : qf;  // (width F)
      // With few rows every thread norms and quantizes all rows itself (phase prologue); otherwise
      // a phase of its own does it, a row per item.
      auto norm_rows = [&](const float* w, const QX& dst) {
        for (int64_t t = 0; t < T; ++t) {
          const float* xr = x + t * H;
          quant_row(isa, xr, H, rms_inv(isa, xr, H, eps_), w, dst, t);
        }
      };
      auto norm_phase = [&](const float* w) {
        if (!priv)
          team.phase(T, [&](int64_t t) {
            const float* xr = x + t * H;
            quant_row(isa, xr, H, rms_inv(isa, xr, H, eps_), w, qh, t);
          });
      };

      team.phase(T, [&](int64_t t) {
        q8_row(head_, tok[t], x + t * H);
        if (gemma)
          for (int64_t i = 0; i < H; ++i) x[t * H + i] *= embed_scale_;
      });
      mark(tid, kEmbed);
      for (int64_t l = 0; l < L_; ++l) {
        const Layer& Ly = layers_[l];
        const bool local = gemma && sliding_[static_cast<size_t>(l)];
        const float* ctab = local ? lcos_.data() : cos_.data();
        const float* stab = local ? lsin_.data() : sin_.data();
        // Gemma's q/k norm over the head dim, before RoPE (a copy: rope_head reads both halves).
        auto head_in = [&](const float* src, const std::vector<float>& w, float* buf) -> const float* {
          if (!gemma) return src;
          const float r = rms_inv_scalar(src, HD, eps_);
          for (int64_t i = 0; i < HD; ++i) buf[i] = src[i] * r * w[i];
          return buf;
        };
        // ---- attention block
        norm_phase(Ly.attn_norm.data());
        mark(tid, kNorm);
        auto pro_attn = [&] { if (priv) norm_rows(Ly.attn_norm.data(), ph); };
        team.phase(
            gemm_items(Ly.qkv, T),
            [&](int64_t i) { gemm_item(avx, Ly.qkv, ph, T, qkv, QKVN, false, i); }, pro_attn);
        mark(tid, kQkv);
        if (!fused) {  // every row's roped K and V into the cache first
          team.phase(T, [&](int64_t t) {
            const float* row = qkv + t * QKVN;
            const float* cs = ctab + pos[t] * half;
            const float* sn = stab + pos[t] * half;
            float nb[512], k[512];
            for (int64_t h = 0; h < NKV; ++h) {
              const int64_t blk = kv.tables[slt[t] * kv.MB + (pos[t] >> kv.shift)];
              const int64_t off = (((l * NKV + h) * kv.NB + blk) * kv.BS + (pos[t] & (kv.BS - 1))) * HD;
              rope_head(head_in(row + (NH + h) * HD, Ly.k_norm, nb), cs, sn, half, 1.f, k);
              to_half(isa, k, HD, kc + off);
              to_half(isa, row + (NH + NKV + h) * HD, HD, vc + off);
            }
          });
          mark(tid, kRope);
        }
        auto attend_one = [&](int64_t t, int64_t h) {
          const int64_t kvh = h / group;
          const float* row = qkv + t * QKVN;
          const float* cs = ctab + pos[t] * half;
          const float* sn = stab + pos[t] * half;
          float q[512], k[512], o[512], nb[512];
          uint16_t kh[512], vh[512];  // this row's own K/V as the cache stores them (fp16)
          rope_head(head_in(row + h * HD, Ly.q_norm, nb), cs, sn, half, qscale, q);
          rope_head(head_in(row + (NH + kvh) * HD, Ly.k_norm, nb), cs, sn, half, 1.f, k);
          to_half(isa, k, HD, kh);
          to_half(isa, row + (NH + NKV + kvh) * HD, HD, vh);
          const int64_t base = (l * NKV + kvh) * kv.NB * kv.BS * HD;  // (layer, kv head, block 0)
          const int64_t* blocks = kv.tables + slt[t] * kv.MB;
          const Pages K{kc + base, blocks, kv.BS * HD, kv.shift, HD};
          const Pages V{vc + base, blocks, kv.BS * HD, kv.shift, HD};
          if (fused && h % group == 0) {  // the only writer of (block, kvh, offset); nobody reads it here
            std::memcpy(const_cast<uint16_t*>(K.row(pos[t])), kh, static_cast<size_t>(HD) * 2);
            std::memcpy(const_cast<uint16_t*>(V.row(pos[t])), vh, static_cast<size_t>(HD) * 2);
          }
          // A sliding layer sees keys at positions (pos - window, pos]: cache rows from `lo`.
          const int64_t lo = local ? std::max<int64_t>(0, pos[t] - window_ + 1) : 0;
          attend(isa, q, K, V, lo, pos[t] - lo, kh, vh, HD, o);
          if (HD % QK == 0) {
            for (int64_t g = 0; g < HD / QK; ++g) {
              const int64_t col = h * HD + g * QK;
              quant_block(isa, o + g * QK, qa, t, col / QK);
            }
          } else {  // heads do not align with quantization blocks: stage the output in gu (unused now)
            std::memcpy(gu + t * AO + h * HD, o, static_cast<size_t>(HD) * 4);
          }
        };
        team.phase(
            n_att,
            [&](int64_t i) {
              if (by_row) {
                const int64_t t = T - 1 - i;
                for (int64_t h = 0; h < NH; ++h) attend_one(t, h);
              } else {
                attend_one(i / NH, i % NH);
              }
            },
            by_row ? Split::kInterleaved : Split::kContiguous);
        if (HD % QK != 0)
          team.phase(T, [&](int64_t t) { quant_row(isa, gu + t * AO, AO, 1.f, nullptr, qa, t); });
        mark(tid, kAttn);
        // Llama adds the projection into the residual stream; Gemma norms it first (post_norm).
        auto post_norm = [&](const std::vector<float>& w) {
          team.phase(T, [&](int64_t t) {
            const float* yr = y + t * H;
            const float r = rms_inv(isa, yr, H, eps_);
            float* xr = x + t * H;
            for (int64_t i = 0; i < H; ++i) xr[i] += yr[i] * r * w[i];
          });
        };
        team.phase(gemm_items(Ly.o, T),
                   [&](int64_t i) { gemm_item(avx, Ly.o, qa, T, gemma ? y : x, H, !gemma, i); });
        if (gemma) post_norm(Ly.post_attn_norm);
        mark(tid, kO);
        // ---- feed-forward block
        norm_phase(Ly.ffn_norm.data());
        mark(tid, kNorm);
        auto pro_ffn = [&] { if (priv) norm_rows(Ly.ffn_norm.data(), ph); };
        team.phase(
            gemm_items(Ly.gate_up, T),
            [&](int64_t i) { gemm_item(avx, Ly.gate_up, ph, T, gu, 2 * F, false, i); }, pro_ffn);
        mark(tid, kGateUp);
        // buf: F floats this call may overwrite (GeGLU's staging row).
        auto silu_row = [&](int64_t t, const QX& dst, float* buf) {
          const float* gr = gu + t * 2 * F;
          if (gemma) {
            gelu_tanh_mul(isa, gr, gr + F, F, buf);
            quant_row(isa, buf, F, 1.f, nullptr, dst, t);
          } else {
            silu_mul_quant(isa, gr, gr + F, F, dst, t);
          }
        };
        if (!priv) team.phase(T, [&](int64_t t) { silu_row(t, qf, gu + t * 2 * F); });  // its gate half
        mark(tid, kSilu);
        auto pro_down = [&] {
          if (priv)
            for (int64_t t = 0; t < T; ++t) silu_row(t, pf, scratch + (1 + tid) * F);
        };
        team.phase(
            gemm_items(Ly.down, T),
            [&](int64_t i) { gemm_item(avx, Ly.down, pf, T, gemma ? y : x, H, !gemma, i); }, pro_down);
        if (gemma) post_norm(Ly.post_ffn_norm);
        mark(tid, kDown);
      }
      // The LM head's input: the same rows, with or without the residual term (head_parts_).
      QX hh = ph;
      if (head_parts_ == 1) hh.p2 = 0;
      auto final_row = [&](int64_t i, const QX& dst) {
        const float* xr = x + srow[i] * H;
        quant_row(isa, xr, H, rms_inv(isa, xr, H, eps_), final_norm_.data(), dst, i);
      };
      if (!priv) team.phase(R, [&](int64_t i) { final_row(i, hh); });
      auto pro_head = [&] {
        if (priv)
          for (int64_t i = 0; i < R; ++i) final_row(i, hh);
      };
      team.phase(
          gemm_items(head_, R), [&](int64_t i) { gemm_item(avx, head_, hh, R, logits, V_, false, i); }, pro_head);
      mark(tid, kHead);
    };
    run_parallel(nt, program);
    if (prof) ++prof_steps_;
  }

  int parts_, head_parts_;  // int8 terms per activation block: layer matmuls, LM head
  int64_t L_, H_, F_, NH_, NKV_, V_, HD_ = 0, QKVN_ = 0, AO_ = 0;
  double theta_;
  float eps_;
  std::vector<Layer> layers_;
  Packed head_;
  std::vector<float> final_norm_;
  std::vector<double> inv_freq_;
  std::vector<float> cos_, sin_;
  int64_t rope_len_ = 0;
  // Gemma 3 (enable_gemma3)
  bool gemma_ = false;
  std::vector<bool> sliding_;
  int64_t window_ = 0;
  std::vector<double> local_inv_freq_;
  std::vector<float> lcos_, lsin_;
  float embed_scale_ = 1.f;
  AlignedBuf x_, qkv_, gu_, y_, scratch_, xq_, xd_, xds_;
  int64_t ws_rows_ = 0;
  int64_t ws_copies_ = 0;
  int num_threads_ = 0;
  bool profiling_ = false;
  double prof_[kNumPhases] = {};
  int64_t prof_steps_ = 0;
  std::mutex mu_;
};

}  // namespace

PYBIND11_MODULE(_llm_step, m) {
  m.doc() = "Whole-step Llama forward with Q4_1/Q8_0 weights and int8 activations (AVX-512 VNNI + scalar).";
  m.def("has_avx512_vnni", &cpu_has_avx512_vnni, "True if the CPU (and OS) support the AVX-512 VNNI path.");
  m.def("has_avx2", &cpu_has_avx2, "True if the CPU supports the AVX2 matmul path (avx2, fma, f16c).");
  m.def(
      "isa", [] { return std::string(use_amx() ? "avx512-vnni+amx" : isa_name()); },
      "The matmul path a step uses now: avx512-vnni+amx, avx512-vnni, avx2, scalar.");
  m.def("has_amx", &cpu_has_amx, "True if the CPU has AMX int8 tiles and the kernel granted their state.");
  m.def("uses_amx", &use_amx, "True if matmuls of two or more rows use AMX tiles now.");
  m.def("set_force_no_amx", [](bool on) { g_force_no_amx.store(on); }, "Keep many-row matmuls on VNNI (tests).");
  m.def("force_no_amx", [] { return g_force_no_amx.load(); });
  m.def("set_force_avx2", [](bool on) { g_force_avx2.store(on); }, "Use the AVX2 path even with AVX-512 (tests).");
  m.def("force_avx2", [] { return g_force_avx2.load(); });
  m.def(
      "set_force_scalar", [](bool on) { g_force_scalar.store(on); },
      "Force the portable scalar path (for tests); False restores automatic dispatch.");
  m.def("force_scalar", [] { return g_force_scalar.load(); });
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw py::value_error("num_threads must be >= 1");
        g_num_threads.store(n);
      },
      "Default OpenMP thread count (2 unless set).");
  m.def("get_num_threads", [] { return g_num_threads.load(); });
  m.def(
      "set_backend",
      [](const std::string& name) {
        for (int i = 0; i < 2; ++i)
          if (name == kBackendNames[i]) {
            g_backend.store(i);
            return;
          }
        throw py::value_error("backend must be 'steal' or 'static', got '" + name + "'");
      },
      "Parallel backend: 'steal' (default) or 'static'; see kernels/llm_step.py.");
  m.def("get_backend", [] { return std::string(kBackendNames[g_backend.load()]); });

  m.def("rows_quantize", &rows_quantize, py::arg("x"), py::arg("mul"), py::arg("w"), py::arg("parts"));
  m.def("rows_silu_mul_quantize", &rows_silu_mul_quantize, py::arg("gate"), py::arg("up"), py::arg("parts"));
  m.def("rows_rms_inv", &rows_rms_inv, py::arg("x"), py::arg("eps"));
  m.def("rows_gelu_tanh_mul", &rows_gelu_tanh_mul, py::arg("gate"), py::arg("up"));
  m.def("rows_attend", &rows_attend, py::arg("q"), py::arg("K"), py::arg("V"), py::arg("kx"), py::arg("vx"),
        py::arg("blocks") = py::none(), py::arg("n") = -1, py::arg("lo") = 0);
  m.def("rows_to_half", &rows_to_half, py::arg("x"));

  py::class_<PackedLinear>(m, "PackedLinear")
      .def("matmul", &PackedLinear::matmul, py::arg("x"), py::arg("num_threads") = 0,
           py::arg("activations") = "int8")
      .def_property_readonly("n", &PackedLinear::n)
      .def_property_readonly("k", &PackedLinear::k)
      .def_property_readonly("bits", &PackedLinear::bits)
      .def_property_readonly("f16_scales", &PackedLinear::f16_scales)
      .def_property_readonly("nbytes", &PackedLinear::nbytes);
  m.def("pack_q4", &make_q4, py::arg("qweight"), py::arg("scales"), py::arg("mins"));
  m.def("pack_q8", &make_q8, py::arg("qweight"), py::arg("scales"));

  py::class_<Llama>(m, "Llama")
      .def(py::init<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, double, uintptr_t, uintptr_t,
                    uintptr_t, const std::vector<uintptr_t>&, const std::vector<uintptr_t>&,
                    const std::vector<uintptr_t>&, const std::vector<uintptr_t>&, const std::vector<uintptr_t>&,
                    const std::vector<uintptr_t>&, const std::vector<uintptr_t>&, const std::vector<uintptr_t>&,
                    const std::vector<uintptr_t>&, const std::vector<uintptr_t>&, const std::vector<uintptr_t>&,
                    const std::vector<uintptr_t>&, const std::vector<uintptr_t>&, const std::vector<uintptr_t>&,
                    const std::string&, const std::string&, int64_t>(),
           py::arg("n_layers"), py::arg("hidden"), py::arg("ffn"), py::arg("n_heads"), py::arg("n_kv_heads"),
           py::arg("vocab"), py::arg("rope_theta"), py::arg("rms_eps"), py::arg("emb_q"), py::arg("emb_s"),
           py::arg("final_norm"), py::arg("attn_norm"), py::arg("ffn_norm"), py::arg("qkv_q"), py::arg("qkv_s"),
           py::arg("qkv_m"), py::arg("o_q"), py::arg("o_s"), py::arg("o_m"), py::arg("gu_q"), py::arg("gu_s"),
           py::arg("gu_m"), py::arg("dn_q"), py::arg("dn_s"), py::arg("dn_m"), py::arg("activations") = "int8x2",
           py::arg("head_activations") = "int8x2", py::arg("head_dim") = 0)
      .def("enable_gemma3", &Llama::enable_gemma3, py::arg("q_norm"), py::arg("k_norm"), py::arg("post_attn_norm"),
           py::arg("post_ffn_norm"), py::arg("sliding"), py::arg("window"), py::arg("local_theta"),
           py::arg("embed_scale"))
      .def("step", &Llama::step, py::arg("token_ids"), py::arg("positions"), py::arg("slots"), py::arg("sample_rows"),
           py::arg("k_cache"), py::arg("v_cache"), py::arg("block_tables"), py::arg("n_blocks"), py::arg("block_size"),
           py::arg("logits"))
      .def_property("num_threads", &Llama::num_threads, &Llama::set_num_threads)
      .def_property_readonly("activations", &Llama::activations)
      .def_property_readonly("head_activations", &Llama::head_activations)
      .def("set_profiling", &Llama::set_profiling)
      .def("profile", &Llama::profile, py::arg("reset") = false)
      .def_property_readonly("packed_bytes", &Llama::packed_bytes)
      .def_property_readonly("f16_scales", &Llama::f16_scales);
}
