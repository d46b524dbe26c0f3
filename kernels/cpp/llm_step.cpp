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
//   * AVX-512 code lives in functions with a target attribute; the module itself is compiled with
//     portable flags and falls back to scalar code (same packed layout, same activation
//     quantization, so results agree to float rounding) when the CPU lacks AVX-512 VNNI or when
//     set_force_scalar(True) asks for it (tests use this).

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <sched.h>

// GCC 12 warns about the self-initialised `__Y` inside _mm512_undefined_*(); it is intentional there.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,fma,f16c")))
#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#define NOINLINE __attribute__((noinline))

namespace {

constexpr int QK = 32;    // quantization group (GGUF block)
constexpr int TILE = 16;  // output rows per packed tile
constexpr int QUAD = 4;   // tiles interleaved per group (see Packed::record)

// ----------------------------------------------------------------------------------------------
// Runtime configuration

std::atomic<bool> g_force_scalar{false};
std::atomic<int> g_num_threads{2};

bool cpu_has_avx512_vnni() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
  }();
  return ok;
}

std::atomic<bool> g_force_avx2{false};

bool cpu_has_avx2() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }();
  return ok;
}

bool use_avx() {
  return !g_force_scalar.load(std::memory_order_relaxed) && !g_force_avx2.load(std::memory_order_relaxed) &&
         cpu_has_avx512_vnni();
}

// The matmuls' middle path: AVX2 integer dot products on CPUs without AVX-512 VNNI (AMD Zen 2/3,
// older Xeons). Only the matmuls, which are >90% of a step; the O(k) per-row work (quantization,
// norms, attention) stays on the scalar path there.
bool use_avx2() { return !g_force_scalar.load(std::memory_order_relaxed) && cpu_has_avx2(); }

const char* isa_name() { return use_avx() ? "avx512-vnni" : use_avx2() ? "avx2" : "scalar"; }

// ----------------------------------------------------------------------------------------------
// Small utilities

struct AlignedBuf {
  uint8_t* p = nullptr;
  size_t n = 0;
  AlignedBuf() = default;
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  AlignedBuf(AlignedBuf&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr, o.n = 0; }
  AlignedBuf& operator=(AlignedBuf&& o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
  }
  ~AlignedBuf() { std::free(p); }
  // Grows to at least `bytes` (contents are not kept).
  void reserve(size_t bytes) {
    if (bytes <= n) return;
    size_t sz = (bytes + 63) / 64 * 64;
    void* q = std::aligned_alloc(64, sz);
    if (!q) throw std::bad_alloc();
    std::free(p);
    p = static_cast<uint8_t*>(q);
    n = sz;
  }
  template <class T>
  T* as() const {
    return reinterpret_cast<T*>(p);
  }
};

inline double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x3FFu;
  if (e == 0) {
    float v = std::ldexp(static_cast<float>(m), -24);
    return sign ? -v : v;
  }
  uint32_t bits = e == 31 ? (sign | 0x7F800000u | (m << 13)) : (sign | ((e + 112u) << 23) | (m << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Converts f to fp16 if it is exactly representable (NaN is not accepted).
bool f32_to_f16_exact(float f, uint16_t* out) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const int32_t e8 = static_cast<int32_t>((b >> 23) & 0xFFu);
  const uint32_t man = b & 0x7FFFFFu;
  if (e8 == 0xFF) {
    if (man) return false;
    *out = sign | 0x7C00u;
    return true;
  }
  if (e8 == 0) {
    if (man) return false;  // float32 subnormals are far below fp16's range
    *out = sign;
    return true;
  }
  const int32_t e = e8 - 127;
  if (e > 15) return false;
  if (e >= -14) {
    if (man & 0x1FFFu) return false;
    *out = static_cast<uint16_t>(sign | ((e + 15) << 10) | (man >> 13));
    return true;
  }
  if (e < -24) return false;
  const uint32_t full = man | 0x800000u;
  const int s = -(e + 1);  // 14..23
  if (full & ((1u << s) - 1u)) return false;
  *out = static_cast<uint16_t>(sign | (full >> s));
  return true;
}

// ----------------------------------------------------------------------------------------------
// Packed weights

struct Packed {
  int bits = 4;  // 4: Q4_1 (scale, min), 8: Q8_0 (scale)
  int64_t n = 0, k = 0, groups = 0, tiles = 0;
  bool f16 = false;
  int64_t qbytes = 0;  // quant bytes per record: 256 (Q4) or 512 (Q8)
  int64_t rec = 0;     // bytes per (tile, group) record
  AlignedBuf buf;

  // Tiles are stored in quads: the 4 tiles' records of one group lie side by side, so a thread
  // walking its tiles reads one sequential stream (the hardware prefetcher's best case).
  uint8_t* record(int64_t t, int64_t g) const { return buf.p + (((t / QUAD) * groups + g) * QUAD + t % QUAD) * rec; }
  int ssize() const { return f16 ? 2 : 4; }
  float scale_at(const uint8_t* r, int i) const {
    if (f16) {
      uint16_t h;
      std::memcpy(&h, r + qbytes + 2 * i, 2);
      return f16_to_f32(h);
    }
    float f;
    std::memcpy(&f, r + qbytes + 4 * i, 4);
    return f;
  }
  float min_at(const uint8_t* r, int i) const {
    const int64_t off = qbytes + TILE * ssize();
    if (f16) {
      uint16_t h;
      std::memcpy(&h, r + off + 2 * i, 2);
      return f16_to_f32(h);
    }
    float f;
    std::memcpy(&f, r + off + 4 * i, 4);
    return f;
  }
  size_t nbytes() const { return static_cast<size_t>((tiles + QUAD - 1) / QUAD * QUAD * groups * rec); }
};

void check_dims(int64_t n, int64_t k, const char* what) {
  if (n <= 0 || k <= 0 || k % QK != 0)
    throw py::value_error(std::string(what) + ": need N > 0 and K > 0 with K % 32 == 0, got N=" + std::to_string(n) +
                          ", K=" + std::to_string(k));
}

bool all_f16_exact(const float* a, int64_t count) {
  uint16_t h;
  for (int64_t i = 0; i < count; ++i)
    if (!f32_to_f16_exact(a[i], &h)) return false;
  return true;
}

void put_scale(uint8_t* dst, int i, float v, bool f16) {
  if (f16) {
    uint16_t h = 0;
    f32_to_f16_exact(v, &h);
    std::memcpy(dst + 2 * i, &h, 2);
  } else {
    std::memcpy(dst + 4 * i, &v, 4);
  }
}

Packed pack_q4(const uint8_t* qw, const float* sc, const float* mn, int64_t n, int64_t k) {
  check_dims(n, k, "Q4_1 weight");
  Packed P;
  P.bits = 4;
  P.n = n;
  P.k = k;
  P.groups = k / QK;
  P.tiles = (n + TILE - 1) / TILE;
  P.f16 = all_f16_exact(sc, n * P.groups) && all_f16_exact(mn, n * P.groups);
  P.qbytes = 256;
  P.rec = 256 + 2 * TILE * P.ssize();
  P.buf.reserve(P.nbytes());
  std::memset(P.buf.p, 0, P.nbytes());
  const int64_t G = P.groups;
  for (int64_t t = 0; t < P.tiles; ++t)
    for (int64_t g = 0; g < G; ++g) {
      uint8_t* r = P.record(t, g);
      for (int nl = 0; nl < TILE; ++nl) {
        const int64_t row = t * TILE + nl;
        if (row >= n) break;
        const uint8_t* src = qw + row * (k / 2) + g * 16;
        for (int j = 0; j < 4; ++j) std::memcpy(r + 64 * j + 4 * nl, src + 4 * j, 4);
        put_scale(r + 256, nl, sc[row * G + g], P.f16);
        put_scale(r + 256 + TILE * P.ssize(), nl, mn[row * G + g], P.f16);
      }
    }
  return P;
}

Packed pack_q8(const int8_t* qw, const float* sc, int64_t n, int64_t k) {
  check_dims(n, k, "Q8_0 weight");
  Packed P;
  P.bits = 8;
  P.n = n;
  P.k = k;
  P.groups = k / QK;
  P.tiles = (n + TILE - 1) / TILE;
  P.f16 = all_f16_exact(sc, n * P.groups);
  P.qbytes = 512;
  P.rec = 512 + TILE * P.ssize();
  P.buf.reserve(P.nbytes());
  std::memset(P.buf.p, 0, P.nbytes());
  const int64_t G = P.groups;
  for (int64_t t = 0; t < P.tiles; ++t)
    for (int64_t g = 0; g < G; ++g) {
      uint8_t* r = P.record(t, g);
      for (int nl = 0; nl < TILE; ++nl) {
        const int64_t row = t * TILE + nl;
        if (row >= n) break;
        const int8_t* src = qw + row * k + g * QK;
        for (int c = 0; c < 8; ++c) std::memcpy(r + 64 * c + 4 * nl, src + 4 * c, 4);
        put_scale(r + 512, nl, sc[row * G + g], P.f16);
      }
    }
  return P;
}

// Dequantized row `row` of a packed Q8_0 matrix (the embedding lookup reads the tied LM head).
void q8_row(const Packed& P, int64_t row, float* out) {
  const int64_t t = row / TILE;
  const int nl = static_cast<int>(row % TILE);
  for (int64_t g = 0; g < P.groups; ++g) {
    const uint8_t* r = P.record(t, g);
    const float s = P.scale_at(r, nl);
    for (int i = 0; i < QK; ++i) {
      const int8_t q = static_cast<int8_t>(r[64 * (i / 4) + 4 * nl + (i % 4)]);
      out[g * QK + i] = static_cast<float>(q) * s;
    }
  }
}

// ----------------------------------------------------------------------------------------------
// Quantized activations: int8 rows of stride `ld`, per-block scale d and d * sum(q).

// int8x2 mode (p2 > 0): a row also holds a second int8 term per block, the residual
// x - d * q quantized with its own scale (~d / 254), p2 elements after the first (p2 / 32 blocks
// after it in d and ds); W x ~= d1 (W q1) + d2 (W q2). The kernels treat the two terms like two
// activation rows sharing every expanded weight block and sum both into the one output row.
struct QX {
  int8_t* q;
  float* d;
  float* ds;
  int64_t ld;      // int8 elements per row
  int64_t gld;     // blocks per row (ld / 32)
  int64_t p2 = 0;  // offset of the residual term (int8 elements); 0: single int8 term
  int parts() const { return p2 > 0 ? 2 : 1; }
};

// Shared by both paths so that they produce the same int8 values (the dot products are then
// exact integers in both and only float summation order differs).
// Round to nearest even for |v| < 2^22, without a libm call (nearbyint is one on baseline x86-64);
// the same result as the AVX path's cvtps2dq in the default rounding mode.
inline float round_even(float v) {
  constexpr float magic = 12582912.f;  // 1.5 * 2^23
  volatile float t = v + magic;        // volatile: keep the compiler from folding the pair
  return t - magic;
}

inline void quant_block_scalar(const float* v, int8_t* q, float* d, float* ds) {
  float amax = 0.f;
  bool finite = true;
  for (int i = 0; i < QK; ++i) {
    const float a = std::fabs(v[i]);
    finite &= a <= std::numeric_limits<float>::max();
    amax = std::max(amax, a);
  }
  if (!finite) {
    std::memset(q, 0, QK);
    *d = *ds = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  const float dd = amax / 127.f;
  const float id = dd > 0.f ? 1.f / dd : 0.f;
  int sum = 0;
  if (std::isfinite(id)) {
    for (int i = 0; i < QK; ++i) {
      const int qi = static_cast<int>(round_even(v[i] * id));
      q[i] = static_cast<int8_t>(std::clamp(qi, -127, 127));
      sum += q[i];
    }
  } else {  // amax so small that 1/d overflows: divide instead
    for (int i = 0; i < QK; ++i) {
      const int qi = static_cast<int>(round_even(v[i] / dd));
      q[i] = static_cast<int8_t>(std::clamp(qi, -127, 127));
      sum += q[i];
    }
  }
  *d = dd;
  *ds = dd * static_cast<float>(sum);
}

// Block quantization plus, when p2 > 0, the residual term at q + p2, d + p2 / 32, ds + p2 / 32.
// The residual is v - d * q with one rounding (fma) in both paths, so both give the same int8s.
inline void quant_block2_scalar(const float* v, int8_t* q, float* d, float* ds, int64_t p2) {
  quant_block_scalar(v, q, d, ds);
  if (p2 <= 0) return;
  float r[QK];
  for (int i = 0; i < QK; ++i) r[i] = std::fma(-*d, static_cast<float>(q[i]), v[i]);
  quant_block_scalar(r, q + p2, d + p2 / QK, ds + p2 / QK);
}

// x[i] * mul * w[i] (w may be null: x[i] * mul, mul may be 1) quantized into row r of qx.
void quant_row_scalar(const float* x, int64_t k, float mul, const float* w, int8_t* q, float* d, float* ds,
                      int64_t p2) {
  float tmp[QK];
  for (int64_t g = 0; g < k / QK; ++g) {
    for (int i = 0; i < QK; ++i) {
      float v = x[g * QK + i] * mul;
      if (w) v *= w[g * QK + i];
      tmp[i] = v;
    }
    quant_block2_scalar(tmp, q + g * QK, d + g, ds + g, p2);
  }
}

float rms_inv_scalar(const float* x, int64_t k, float eps) {
  float ss = 0.f;
  for (int64_t i = 0; i < k; ++i) ss += x[i] * x[i];
  return 1.f / std::sqrt(ss / static_cast<float>(k) + eps);
}

AVX512_TARGET inline void quant_block_avx(__m512 a, __m512 b, int8_t* q, float* d, float* ds) {
  const __m512 aa = _mm512_abs_ps(a), ab = _mm512_abs_ps(b);
  const __m512 big = _mm512_set1_ps(std::numeric_limits<float>::max());
  const __mmask16 fa = _mm512_cmp_ps_mask(aa, big, _CMP_LE_OQ);
  const __mmask16 fb = _mm512_cmp_ps_mask(ab, big, _CMP_LE_OQ);
  if ((fa & fb) != 0xFFFF) {
    std::memset(q, 0, QK);
    *d = *ds = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(aa, ab));
  const float dd = amax / 127.f;
  const float id = dd > 0.f ? 1.f / dd : 0.f;
  if (!std::isfinite(id)) {
    float tmp[QK];
    _mm512_storeu_ps(tmp, a);
    _mm512_storeu_ps(tmp + 16, b);
    quant_block_scalar(tmp, q, d, ds);
    return;
  }
  const __m512 vid = _mm512_set1_ps(id);
  const __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, vid));
  const __m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, vid));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(qa));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtsepi32_epi8(qb));
  const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
  *d = dd;
  *ds = dd * static_cast<float>(sum);
}

AVX512_TARGET inline void quant_block2_avx(__m512 a, __m512 b, int8_t* q, float* d, float* ds, int64_t p2) {
  quant_block_avx(a, b, q, d, ds);
  if (p2 <= 0) return;
  const __m512 vd = _mm512_set1_ps(*d);
  const __m512 qa = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))));
  const __m512 qb =
      _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16))));
  quant_block_avx(_mm512_fnmadd_ps(vd, qa, a), _mm512_fnmadd_ps(vd, qb, b), q + p2, d + p2 / QK, ds + p2 / QK);
}

AVX512_TARGET NOINLINE void quant_row_avx(const float* x, int64_t k, float mul, const float* w, int8_t* q, float* d,
                                          float* ds, int64_t p2) {
  const __m512 vm = _mm512_set1_ps(mul);
  for (int64_t g = 0; g < k / QK; ++g) {
    __m512 a = _mm512_mul_ps(_mm512_loadu_ps(x + g * QK), vm);
    __m512 b = _mm512_mul_ps(_mm512_loadu_ps(x + g * QK + 16), vm);
    if (w) {
      a = _mm512_mul_ps(a, _mm512_loadu_ps(w + g * QK));
      b = _mm512_mul_ps(b, _mm512_loadu_ps(w + g * QK + 16));
    }
    quant_block2_avx(a, b, q + g * QK, d + g, ds + g, p2);
  }
}

AVX512_TARGET NOINLINE float rms_inv_avx(const float* x, int64_t k, float eps) {
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    acc = _mm512_fmadd_ps(v, v, acc);
  }
  float ss = _mm512_reduce_add_ps(acc);
  for (; i < k; ++i) ss += x[i] * x[i];
  return 1.f / std::sqrt(ss / static_cast<float>(k) + eps);
}

AVX512_TARGET NOINLINE void quant_block_avx_ptr(const float* v, int8_t* q, float* d, float* ds, int64_t p2) {
  quant_block2_avx(_mm512_loadu_ps(v), _mm512_loadu_ps(v + 16), q, d, ds, p2);
}

// Block g (32 values at v) of row `row` of qx.
void quant_block(bool avx, const float* v, const QX& qx, int64_t row, int64_t g) {
  int8_t* q = qx.q + row * qx.ld + g * QK;
  float* d = qx.d + row * qx.gld + g;
  float* ds = qx.ds + row * qx.gld + g;
  if (avx)
    quant_block_avx_ptr(v, q, d, ds, qx.p2);
  else
    quant_block2_scalar(v, q, d, ds, qx.p2);
}

void quant_row(bool avx, const float* x, int64_t k, float mul, const float* w, const QX& qx, int64_t row) {
  int8_t* q = qx.q + row * qx.ld;
  float* d = qx.d + row * qx.gld;
  float* ds = qx.ds + row * qx.gld;
  if (avx)
    quant_row_avx(x, k, mul, w, q, d, ds, qx.p2);
  else
    quant_row_scalar(x, k, mul, w, q, d, ds, qx.p2);
}

float rms_inv(bool avx, const float* x, int64_t k, float eps) {
  return avx ? rms_inv_avx(x, k, eps) : rms_inv_scalar(x, k, eps);
}

// ----------------------------------------------------------------------------------------------
// Quantized GEMM: y[M, N] (=|+=) x[M, K] @ W[N, K]^T over packed tiles [t0, t1).

AVX512_TARGET inline __m512 load_scales16(const uint8_t* p, bool f16) {
  if (f16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_loadu_ps(reinterpret_cast<const float*>(p));
}

AVX512_TARGET inline void store_tile(float* y, int64_t n0, int64_t n, __m512 v, bool accum) {
  const int64_t rem = n - n0;
  if (rem >= TILE) {
    if (accum) v = _mm512_add_ps(_mm512_loadu_ps(y + n0), v);
    _mm512_storeu_ps(y + n0, v);
  } else {
    const __mmask16 m = static_cast<__mmask16>((1u << rem) - 1u);
    if (accum) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + n0), v);
    _mm512_mask_storeu_ps(y + n0, m, v);
  }
}

// MR rows x NV tiles; P = 2: each row's two int8 terms (QX::p2) share every expanded weight block.
template <int MR, int NV, bool F16, int P>
AVX512_TARGET NOINLINE void q4_kernel_avx(const Packed& W, int64_t t0, const QX& x, int64_t m0, float* y, int64_t ldy,
                                          bool accum) {
  constexpr bool SPLIT = MR * NV * P <= 4;
  const int64_t G = W.groups, rec = W.rec, gstride = QUAD * rec;  // tiles t0..t0+NV-1 share a quad
  const uint8_t* base = W.record(t0, 0);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  constexpr int SS = F16 ? 2 : 4;
  __m512 acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_setzero_ps();
  const int8_t* xr[MR][P];
  const float* dr[MR][P];
  const float* dsr[MR][P];
  for (int m = 0; m < MR; ++m)
    for (int p = 0; p < P; ++p) {
      xr[m][p] = x.q + (m0 + m) * x.ld + p * x.p2;
      dr[m][p] = x.d + (m0 + m) * x.gld + p * (x.p2 / QK);
      dsr[m][p] = x.ds + (m0 + m) * x.gld + p * (x.p2 / QK);
    }
  for (int64_t g = 0; g < G; ++g) {
    __m512i ia[MR][P][NV], ib[MR][P][NV];
    for (int m = 0; m < MR; ++m)
      for (int p = 0; p < P; ++p)
        for (int v = 0; v < NV; ++v) {
          ia[m][p][v] = _mm512_setzero_si512();
          if (SPLIT) ib[m][p][v] = _mm512_setzero_si512();
        }
    const uint8_t* r[NV];
    for (int v = 0; v < NV; ++v) r[v] = base + g * gstride + v * rec;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m512i lo[NV], hi[NV];
      for (int v = 0; v < NV; ++v) {
        const __m512i raw = _mm512_loadu_si512(r[v] + 64 * j);
        lo[v] = _mm512_and_si512(raw, m4);
        hi[v] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
      }
      for (int m = 0; m < MR; ++m)
        for (int p = 0; p < P; ++p) {
          const __m512i xl = _mm512_set1_epi32(load_i32(xr[m][p] + g * QK + 4 * j));
          const __m512i xh = _mm512_set1_epi32(load_i32(xr[m][p] + g * QK + 16 + 4 * j));
          for (int v = 0; v < NV; ++v) {
            ia[m][p][v] = _mm512_dpbusd_epi32(ia[m][p][v], lo[v], xl);
            if (SPLIT)
              ib[m][p][v] = _mm512_dpbusd_epi32(ib[m][p][v], hi[v], xh);
            else
              ia[m][p][v] = _mm512_dpbusd_epi32(ia[m][p][v], hi[v], xh);
          }
        }
    }
    __m512 sv[NV], mv[NV];
    for (int v = 0; v < NV; ++v) {
      sv[v] = load_scales16(r[v] + 256, F16);
      mv[v] = load_scales16(r[v] + 256 + TILE * SS, F16);
    }
    for (int m = 0; m < MR; ++m) {
      float dsum = dsr[m][0][g];
      if (P == 2) dsum += dsr[m][P - 1][g];
      const __m512 dxs = _mm512_set1_ps(dsum);
      for (int p = 0; p < P; ++p) {
        const __m512 dx = _mm512_set1_ps(dr[m][p][g]);
        for (int v = 0; v < NV; ++v) {
          __m512i dot = ia[m][p][v];
          if (SPLIT) dot = _mm512_add_epi32(dot, ib[m][p][v]);
          acc[m][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(sv[v], dx), acc[m][v]);
        }
      }
      for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_fmadd_ps(mv[v], dxs, acc[m][v]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) store_tile(y + (m0 + m) * ldy, (t0 + v) * TILE, W.n, acc[m][v], accum);
}

template <int MR, int NV, bool F16, int P>
AVX512_TARGET NOINLINE void q8_kernel_avx(const Packed& W, int64_t t0, const QX& x, int64_t m0, float* y, int64_t ldy,
                                          bool accum) {
  constexpr bool SPLIT = MR * NV * P <= 4;
  const int64_t G = W.groups, rec = W.rec, gstride = QUAD * rec;  // tiles t0..t0+NV-1 share a quad
  const uint8_t* base = W.record(t0, 0);
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_setzero_ps();
  const int8_t* xr[MR][P];
  const float* dr[MR][P];
  for (int m = 0; m < MR; ++m)
    for (int p = 0; p < P; ++p) {
      xr[m][p] = x.q + (m0 + m) * x.ld + p * x.p2;
      dr[m][p] = x.d + (m0 + m) * x.gld + p * (x.p2 / QK);
    }
  for (int64_t g = 0; g < G; ++g) {
    __m512i ia[MR][P][NV], ib[MR][P][NV];
    for (int m = 0; m < MR; ++m)
      for (int p = 0; p < P; ++p)
        for (int v = 0; v < NV; ++v) {
          ia[m][p][v] = _mm512_setzero_si512();
          if (SPLIT) ib[m][p][v] = _mm512_setzero_si512();
        }
    const uint8_t* r[NV];
    for (int v = 0; v < NV; ++v) r[v] = base + g * gstride + v * rec;
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) {
      __m512i aw[NV];
      __mmask64 neg[NV];
      for (int v = 0; v < NV; ++v) {
        const __m512i raw = _mm512_loadu_si512(r[v] + 64 * c);
        aw[v] = _mm512_abs_epi8(raw);
        neg[v] = _mm512_movepi8_mask(raw);
      }
      for (int m = 0; m < MR; ++m)
        for (int p = 0; p < P; ++p) {
          const __m512i xb = _mm512_set1_epi32(load_i32(xr[m][p] + g * QK + 4 * c));
          for (int v = 0; v < NV; ++v) {
            const __m512i xs = _mm512_mask_sub_epi8(xb, neg[v], zero, xb);
            if (SPLIT && (c & 1))
              ib[m][p][v] = _mm512_dpbusd_epi32(ib[m][p][v], aw[v], xs);
            else
              ia[m][p][v] = _mm512_dpbusd_epi32(ia[m][p][v], aw[v], xs);
          }
        }
    }
    __m512 sv[NV];
    for (int v = 0; v < NV; ++v) sv[v] = load_scales16(r[v] + 512, F16);
    for (int m = 0; m < MR; ++m)
      for (int p = 0; p < P; ++p) {
        const __m512 dx = _mm512_set1_ps(dr[m][p][g]);
        for (int v = 0; v < NV; ++v) {
          __m512i dot = ia[m][p][v];
          if (SPLIT) dot = _mm512_add_epi32(dot, ib[m][p][v]);
          acc[m][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(sv[v], dx), acc[m][v]);
        }
      }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) store_tile(y + (m0 + m) * ldy, (t0 + v) * TILE, W.n, acc[m][v], accum);
}

using KernelFn = void (*)(const Packed&, int64_t, const QX&, int64_t, float*, int64_t, bool);

template <int BITS, bool F16, int P, int MR, int NV>
constexpr KernelFn kernel_of() {
  if constexpr (MR * P > 4 || (MR > 1 && NV > 2)) {
    return nullptr;
  } else if constexpr (BITS == 4) {
    return &q4_kernel_avx<MR, NV, F16, P>;
  } else {
    return &q8_kernel_avx<MR, NV, F16, P>;
  }
}

// Table [mr-1][nv-1] for MR 1..4/P, NV 1..4 (NV 3..4 only used with MR = 1).
template <int BITS, bool F16, int P>
struct KernelTable {
  KernelFn f[4][4];
  constexpr KernelTable()
      : f{{kernel_of<BITS, F16, P, 1, 1>(), kernel_of<BITS, F16, P, 1, 2>(), kernel_of<BITS, F16, P, 1, 3>(),
           kernel_of<BITS, F16, P, 1, 4>()},
          {kernel_of<BITS, F16, P, 2, 1>(), kernel_of<BITS, F16, P, 2, 2>(), nullptr, nullptr},
          {kernel_of<BITS, F16, P, 3, 1>(), kernel_of<BITS, F16, P, 3, 2>(), nullptr, nullptr},
          {kernel_of<BITS, F16, P, 4, 1>(), kernel_of<BITS, F16, P, 4, 2>(), nullptr, nullptr}} {}
};

const KernelFn (*kernel_table(int bits, bool f16, int parts))[4] {
  static const KernelTable<4, false, 1> q4f32;
  static const KernelTable<4, true, 1> q4f16;
  static const KernelTable<8, false, 1> q8f32;
  static const KernelTable<8, true, 1> q8f16;
  static const KernelTable<4, false, 2> q4f32x2;
  static const KernelTable<4, true, 2> q4f16x2;
  static const KernelTable<8, false, 2> q8f32x2;
  static const KernelTable<8, true, 2> q8f16x2;
  if (parts == 2) {
    if (bits == 4) return f16 ? q4f16x2.f : q4f32x2.f;
    return f16 ? q8f16x2.f : q8f32x2.f;
  }
  if (bits == 4) return f16 ? q4f16.f : q4f32.f;
  return f16 ? q8f16.f : q8f32.f;
}

constexpr int64_t kRowBlock = 128;
constexpr int64_t kPrivateRows = 4;  // up to this many rows, each thread quantizes all rows itself  // rows per block when M is large (activations stay in L2)

// Rows [m0, m1) x tiles [t0, t1) (t0 even; [t0, t1) within one quad).
void gemm_avx(const Packed& W, const QX& x, int64_t m0, int64_t m1, float* y, int64_t ldy, bool accum, int64_t t0,
              int64_t t1) {
  const int parts = x.parts();
  const auto tab = kernel_table(W.bits, W.f16, parts);
  if (m1 - m0 == 1) {  // the whole quad in one call: one sequential stream of records
    tab[0][t1 - t0 - 1](W, t0, x, m0, y, ldy, accum);
    return;
  }
  const int64_t mstep = 4 / parts;  // up to 4 int8 rows (terms) per call
  for (int64_t t = t0; t < t1; t += 2) {
    const int nv = static_cast<int>(std::min<int64_t>(2, t1 - t));
    for (int64_t m = m0; m < m1; m += mstep) {
      const int mr = static_cast<int>(std::min<int64_t>(mstep, m1 - m));
      tab[mr - 1][nv - 1](W, t, x, m, y, ldy, accum);
    }
  }
}

// Portable path: a record is widened to int16 once and reused for up to 8 rows; the int16 dot
// products are written so that compilers vectorize them with baseline SSE2 (pmaddwd).
void gemm_scalar(const Packed& W, const QX& x, int64_t m0, int64_t m1, float* y, int64_t ldy, bool accum, int64_t t0,
                 int64_t t1) {
  constexpr int MB = 8;
  const int64_t G = W.groups;
  alignas(64) int16_t w16[TILE][QK];
  alignas(64) int16_t x16[QK];
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n0 = t * TILE;
    const int nvalid = static_cast<int>(std::min<int64_t>(TILE, W.n - n0));
    for (int64_t mb = m0; mb < m1; mb += MB) {
      const int mr = static_cast<int>(std::min<int64_t>(MB, m1 - mb));
      float acc[MB][TILE] = {};
      for (int64_t g = 0; g < G; ++g) {
        const uint8_t* r = W.record(t, g);
        if (W.bits == 4) {
          for (int j = 0; j < 4; ++j)
            for (int nl = 0; nl < TILE; ++nl)
              for (int b = 0; b < 4; ++b) {
                const uint8_t byte = r[64 * j + 4 * nl + b];
                w16[nl][4 * j + b] = static_cast<int16_t>(byte & 15);
                w16[nl][16 + 4 * j + b] = static_cast<int16_t>(byte >> 4);
              }
        } else {
          for (int c = 0; c < 8; ++c)
            for (int nl = 0; nl < TILE; ++nl)
              for (int b = 0; b < 4; ++b) w16[nl][4 * c + b] = static_cast<int8_t>(r[64 * c + 4 * nl + b]);
        }
        float sc[TILE], mn[TILE];
        for (int nl = 0; nl < TILE; ++nl) {
          sc[nl] = W.scale_at(r, nl);
          mn[nl] = W.bits == 4 ? W.min_at(r, nl) : 0.f;
        }
        for (int mi = 0; mi < mr; ++mi) {
          const int64_t m = mb + mi;
          float dxs = 0.f;
          for (int p = 0; p < x.parts(); ++p) {
            const int8_t* xg = x.q + m * x.ld + p * x.p2 + g * QK;
            for (int i = 0; i < QK; ++i) x16[i] = xg[i];
            const float dx = x.d[m * x.gld + p * (x.p2 / QK) + g];
            if (W.bits == 4) dxs += x.ds[m * x.gld + p * (x.p2 / QK) + g];
            for (int nl = 0; nl < TILE; ++nl) {
              int32_t dot = 0;
              for (int i = 0; i < QK; ++i) dot += static_cast<int32_t>(w16[nl][i]) * x16[i];
              acc[mi][nl] += static_cast<float>(dot) * (sc[nl] * dx);
            }
          }
          if (W.bits == 4)
            for (int nl = 0; nl < TILE; ++nl) acc[mi][nl] += mn[nl] * dxs;
        }
      }
      for (int mi = 0; mi < mr; ++mi) {
        float* yr = y + (mb + mi) * ldy + n0;
        for (int nl = 0; nl < nvalid; ++nl) yr[nl] = accum ? yr[nl] + acc[mi][nl] : acc[mi][nl];
      }
    }
  }
}

// AVX2 path, same packed records and the same int8 activations as the others, so the integer dot
// products are exact and equal; only float summation order differs. Per 32-bit lane one weight
// row: a record's 64-byte chunk holds 4 bytes of each of the 16 rows, i.e. two ymm of 8 rows.
// u8 x s8 pairs go through maddubs (Q4_1 nibbles <= 15: no int16 saturation) then madd with ones;
// Q8_0's signed weights use |w| and x * sign(w) (|x| <= 127, so pair sums stay below 2^15).
AVX2_TARGET inline __m256i dot4_u8s8(__m256i w, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

AVX2_TARGET inline __m256i dot4_s8s8(__m256i w, __m256i x) {
  return dot4_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

AVX2_TARGET inline __m256 load_scales8(const uint8_t* p, bool f16) {
  if (f16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
}

AVX2_TARGET NOINLINE void gemm_avx2(const Packed& W, const QX& x, int64_t m0, int64_t m1, float* y, int64_t ldy,
                                    bool accum, int64_t t0, int64_t t1) {
  constexpr int MB = 4;
  const int64_t G = W.groups;
  const int parts = x.parts();
  const bool q4 = W.bits == 4;
  const int ss = W.ssize();
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n0 = t * TILE;
    const int nvalid = static_cast<int>(std::min<int64_t>(TILE, W.n - n0));
    for (int64_t mb = m0; mb < m1; mb += MB) {
      const int mr = static_cast<int>(std::min<int64_t>(MB, m1 - mb));
      __m256 acc[MB][2];
      for (int mi = 0; mi < MB; ++mi) acc[mi][0] = acc[mi][1] = _mm256_setzero_ps();
      for (int64_t g = 0; g < G; ++g) {
        const uint8_t* r = W.record(t, g);
        const __m256 sc0 = load_scales8(r + W.qbytes, W.f16), sc1 = load_scales8(r + W.qbytes + 8 * ss, W.f16);
        for (int mi = 0; mi < mr; ++mi) {
          const int64_t m = mb + mi;
          float dxs = 0.f;
          for (int p = 0; p < parts; ++p) {
            const int8_t* xg = x.q + m * x.ld + p * x.p2 + g * QK;
            const int64_t bi = m * x.gld + p * (x.p2 / QK) + g;
            __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
            if (q4) {
              for (int j = 0; j < 4; ++j) {
                const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 64 * j));
                const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 64 * j + 32));
                const __m256i xl = _mm256_set1_epi32(load_i32(xg + 4 * j));
                const __m256i xh = _mm256_set1_epi32(load_i32(xg + 16 + 4 * j));
                s0 = _mm256_add_epi32(s0, dot4_u8s8(_mm256_and_si256(r0, m4), xl));
                s0 = _mm256_add_epi32(s0, dot4_u8s8(_mm256_and_si256(_mm256_srli_epi16(r0, 4), m4), xh));
                s1 = _mm256_add_epi32(s1, dot4_u8s8(_mm256_and_si256(r1, m4), xl));
                s1 = _mm256_add_epi32(s1, dot4_u8s8(_mm256_and_si256(_mm256_srli_epi16(r1, 4), m4), xh));
              }
              dxs += x.ds[bi];
            } else {
              for (int c = 0; c < 8; ++c) {
                const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 64 * c));
                const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 64 * c + 32));
                const __m256i xc = _mm256_set1_epi32(load_i32(xg + 4 * c));
                s0 = _mm256_add_epi32(s0, dot4_s8s8(w0, xc));
                s1 = _mm256_add_epi32(s1, dot4_s8s8(w1, xc));
              }
            }
            const __m256 dx = _mm256_set1_ps(x.d[bi]);
            acc[mi][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(sc0, dx), acc[mi][0]);
            acc[mi][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_mul_ps(sc1, dx), acc[mi][1]);
          }
          if (q4) {
            const uint8_t* mn = r + W.qbytes + TILE * ss;
            const __m256 vds = _mm256_set1_ps(dxs);
            acc[mi][0] = _mm256_fmadd_ps(load_scales8(mn, W.f16), vds, acc[mi][0]);
            acc[mi][1] = _mm256_fmadd_ps(load_scales8(mn + 8 * ss, W.f16), vds, acc[mi][1]);
          }
        }
      }
      for (int mi = 0; mi < mr; ++mi) {
        float* yr = y + (mb + mi) * ldy + n0;
        alignas(32) float tmp[TILE];
        _mm256_store_ps(tmp, acc[mi][0]);
        _mm256_store_ps(tmp + 8, acc[mi][1]);
        for (int nl = 0; nl < nvalid; ++nl) yr[nl] = accum ? yr[nl] + tmp[nl] : tmp[nl];
      }
    }
  }
}

// A matmul is cut into work items (row block, quad of tiles), row-block major: an item's weights
// (4 tiles) stay in L1/L2 while it runs over up to kRowBlock rows, whose int8 rows stay in L2.
int64_t gemm_items(const Packed& W, int64_t M) {
  if (M <= 0) return 0;
  return (M + kRowBlock - 1) / kRowBlock * ((W.tiles + QUAD - 1) / QUAD);
}

void gemm_item(bool avx, const Packed& W, const QX& x, int64_t M, float* y, int64_t ldy, bool accum, int64_t item) {
  const int64_t quads = (W.tiles + QUAD - 1) / QUAD;
  const int64_t m0 = item / quads * kRowBlock, m1 = std::min(M, m0 + kRowBlock);
  const int64_t t0 = item % quads * QUAD, t1 = std::min(W.tiles, t0 + QUAD);
  if (avx)
    gemm_avx(W, x, m0, m1, y, ldy, accum, t0, t1);
  else if (use_avx2())
    gemm_avx2(W, x, m0, m1, y, ldy, accum, t0, t1);
  else
    gemm_scalar(W, x, m0, m1, y, ldy, accum, t0, t1);
}

// ----------------------------------------------------------------------------------------------
// Parallel execution. A step is an SPMD program: every participating thread runs the same code,
// a sequence of phases; phase() runs the phase's work items and returns when all of them are done
// (the only synchronisation). Both backends (kernels.llm_step.set_backend) use OpenMP's threads,
// which are PyTorch's too (same libgomp), so the sampling ops between steps and the steps share
// one set of threads instead of oversubscribing the 2 cores:
//
//  * steal (default): StealTeam. Each thread takes the items of its own contiguous share of a
//    phase first, then steals from the others' shares. A phase waits for its items, never for a
//    thread: a thread that the OS has descheduled (another process busy on the other core) loses
//    its share instead of holding up ~150 barriers per token, and one that comes late runs through
//    the finished phases without work; only the end of the step (the region's end) waits for it.
//  * static: OmpTeam, a static split and a barrier per phase. Measured on the shared 2-core VM
//    with another process busy on the cores: decode 2-20 tok/s, where steal kept 57-62 (quiet:
//    ~175 and ~215); each barrier can wait a scheduler time slice for a descheduled thread.
//    A pool of helper threads of our own (as kernels/cpp/tree_ensemble.cpp has) was tried too:
//    no better under contention, and ~20% slower at batched decode when PyTorch's OpenMP threads,
//    spinning after a sampling op, competed with the helper.
//
// Before its first item of a phase a thread runs the phase's `prologue` (with few rows, each
// thread quantizes the normed rows into its own buffer instead of a phase + wait of its own).

enum class Split { kContiguous, kInterleaved };  // OmpTeam's static split (StealTeam: contiguous shares)

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// One atomic per cache line. A phase has one Slot per thread of the team (the thread's share of
// the items: the count taken from its front and from its back, packed in 32 + 32 bits) and one
// counting finished items.
struct alignas(64) Slot {
  std::atomic<uint64_t> v{0};
};

struct StealTeam {
  int tid;
  int nslots;      // planned team size: items are pre-split into nslots contiguous shares
  Slot* counters;  // n_phases * (nslots + 1)
  int64_t n_phases;
  int64_t phase_idx = 0;

  // Thread s owns items [n s / nslots, n (s + 1) / nslots) and takes them from the front, so
  // that, as with a static split, each thread streams its own contiguous part of a weight matrix
  // (interleaved claims cost ~25% of decode speed: the prefetchers see broken streams). A thread
  // that runs out takes the others' items from their backs: a thread that is late or descheduled
  // loses its share instead of holding up the phase.
  static int64_t take(Slot& slot, int64_t lo, int64_t hi, bool front) {
    uint64_t cur = slot.v.load(std::memory_order_relaxed);
    for (;;) {
      const int64_t f = static_cast<int64_t>(cur & 0xFFFFFFFFu), b = static_cast<int64_t>(cur >> 32);
      if (lo + f >= hi - b) return -1;
      const uint64_t next = front ? cur + 1 : cur + (uint64_t{1} << 32);
      if (slot.v.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return front ? lo + f : hi - b - 1;
    }
  }

  template <class F, class P>
  void phase(int64_t n, F&& fn, P&& prologue, Split = Split::kContiguous) {
    if (phase_idx >= n_phases) std::abort();  // the plan's phase count is a programming error
    Slot* c = counters + phase_idx++ * (nslots + 1);
    if (n <= 0) return;
    int64_t mine = 0;
    for (int k = 0; k < nslots; ++k) {
      const int s = (tid + k) % nslots;
      const int64_t lo = n * s / nslots, hi = n * (s + 1) / nslots;
      for (int64_t i; (i = take(c[s], lo, hi, k == 0)) >= 0;) {
        if (mine++ == 0) prologue();
        fn(i);
      }
    }
    std::atomic<uint64_t>& done = c[nslots].v;
    if (mine) done.fetch_add(static_cast<uint64_t>(mine), std::memory_order_acq_rel);
    for (int spins = 0; done.load(std::memory_order_acquire) < static_cast<uint64_t>(n); ++spins) {
      cpu_relax();
      if ((spins & 255) == 255) sched_yield();  // let a descheduled peer run on this CPU
    }
  }
  template <class F>
  void phase(int64_t n, F&& fn, Split split = Split::kContiguous) {
    phase(n, std::forward<F>(fn), [] {}, split);
  }
};

struct OmpTeam {
  int tid, nth;

  template <class F, class P>
  void phase(int64_t n, F&& fn, P&& prologue, Split split = Split::kContiguous) {
    if (n > 0) {
      if (split == Split::kContiguous) {
        const int64_t i0 = n * tid / nth, i1 = n * (tid + 1) / nth;
        if (i0 < i1) prologue();
        for (int64_t i = i0; i < i1; ++i) fn(i);
      } else {
        if (tid < n) prologue();
        for (int64_t i = tid; i < n; i += nth) fn(i);
      }
    }
#pragma omp barrier
  }
  template <class F>
  void phase(int64_t n, F&& fn, Split split = Split::kContiguous) {
    phase(n, std::forward<F>(fn), [] {}, split);
  }
};

// Counts a program's phases (run once before a StealTeam run; nothing is executed).
struct CountTeam {
  int tid = -1;
  int64_t n_phases = 0;
  template <class F, class P>
  void phase(int64_t, F&&, P&&, Split = Split::kContiguous) {
    ++n_phases;
  }
  template <class F>
  void phase(int64_t, F&&, Split = Split::kContiguous) {
    ++n_phases;
  }
};

enum class Backend { kSteal, kStatic };
const char* const kBackendNames[] = {"steal", "static"};
std::atomic<int> g_backend{static_cast<int>(Backend::kSteal)};

// Runs program(team) with nt threads on the selected backend.
template <class Prog>
void run_parallel(int nt, Prog&& program) {
  const auto backend = static_cast<Backend>(g_backend.load());
  if (backend == Backend::kStatic) {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
      OmpTeam team{omp_get_thread_num(), omp_get_num_threads()};
      program(team);
    }
#else
    (void)nt;
    OmpTeam team{0, 1};  // built without OpenMP: one thread
    program(team);
#endif
    return;
  }
  // kSteal: StealTeam phases on OpenMP's threads. No barrier per phase; the region's end still
  // waits for every thread, but a late one only runs through finished phases.
  CountTeam counter;
  program(counter);
  thread_local std::vector<Slot> counters;
  const int64_t need = counter.n_phases * (nt + 1);
  if (static_cast<int64_t>(counters.size()) < need) counters = std::vector<Slot>(static_cast<size_t>(need));
  for (int64_t i = 0; i < need; ++i) counters[i].v.store(0, std::memory_order_relaxed);
  Slot* const slots = counters.data();  // the caller's (thread_local): not the workers' own
  const int64_t n_phases = counter.n_phases;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
  {
    StealTeam team{omp_get_thread_num(), omp_get_num_threads(), slots, n_phases};
    program(team);
  }
#else
  StealTeam team{0, 1, slots, n_phases};
  program(team);
#endif
}

// ----------------------------------------------------------------------------------------------
// Elementwise helpers

AVX512_TARGET inline __m512 exp_avx(__m512 x) {
  // Cephes expf: exp(x) = 2^n * exp(r), |r| <= ln2/2. max(c, x) / min(c, x) keep NaN (2nd operand).
  x = _mm512_max_ps(_mm512_set1_ps(-87.3f), x);
  x = _mm512_min_ps(_mm512_set1_ps(88.7f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  const __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(p, n);
}

// silu(gate) * up for a row of f values, quantized into row `row` of qx.
AVX512_TARGET NOINLINE void silu_mul_quant_avx(const float* gate, const float* up, int64_t f, const QX& qx,
                                               int64_t row) {
  const __m512 one = _mm512_set1_ps(1.f);
  for (int64_t g = 0; g < f / QK; ++g) {
    __m512 h[2];
    for (int i = 0; i < 2; ++i) {
      const __m512 a = _mm512_loadu_ps(gate + g * QK + 16 * i);
      const __m512 u = _mm512_loadu_ps(up + g * QK + 16 * i);
      const __m512 e = exp_avx(_mm512_sub_ps(_mm512_setzero_ps(), a));
      h[i] = _mm512_mul_ps(_mm512_div_ps(a, _mm512_add_ps(one, e)), u);
    }
    quant_block2_avx(h[0], h[1], qx.q + row * qx.ld + g * QK, qx.d + row * qx.gld + g, qx.ds + row * qx.gld + g,
                     qx.p2);
  }
}

void silu_mul_quant_scalar(const float* gate, const float* up, int64_t f, const QX& qx, int64_t row) {
  float tmp[QK];
  for (int64_t g = 0; g < f / QK; ++g) {
    for (int i = 0; i < QK; ++i) {
      const float a = gate[g * QK + i];
      tmp[i] = a / (1.f + std::exp(-a)) * up[g * QK + i];
    }
    quant_block2_scalar(tmp, qx.q + row * qx.ld + g * QK, qx.d + row * qx.gld + g, qx.ds + row * qx.gld + g,
                        qx.p2);
  }
}

// ----------------------------------------------------------------------------------------------
// Attention: one query head over keys 0..n-1 of one (slot, kv head); online softmax in blocks
// of 16 keys. q is already scaled by 1/sqrt(head_dim).

// Lane i of the result is the sum of the 16 lanes of v[i].
AVX512_TARGET inline __m512 reduce16(const __m512* v) {
  __m512 t[8], u[4], w[2];
  for (int i = 0; i < 8; ++i)
    t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int i = 0; i < 2; ++i)
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Keys 0..nc-1 come from K/V (the cache), key nc from kx/vx (this row's own key, not read back
// from the cache so that decode rows can write the cache in the same phase).
template <int HV>
AVX512_TARGET NOINLINE void attend_avx(const float* q, const float* K, const float* V, int64_t nc, const float* kx,
                                       const float* vx, float* out) {
  constexpr int HD = HV * 16;
  const int64_t n = nc + 1;
  __m512 qv[HV], o[HV];
  for (int h = 0; h < HV; ++h) {
    qv[h] = _mm512_loadu_ps(q + 16 * h);
    o[h] = _mm512_setzero_ps();
  }
  float mx = -std::numeric_limits<float>::infinity();
  float l = 0.f;
  alignas(64) float pb[16];
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const int nb = static_cast<int>(std::min<int64_t>(16, n - j0));
    __m512 part[16];
#pragma GCC unroll 16
    for (int jj = 0; jj < 16; ++jj) {
      if (jj < nb) {
        const float* kr = j0 + jj < nc ? K + (j0 + jj) * HD : kx;
        __m512 t = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
        for (int h = 1; h < HV; ++h) t = _mm512_fmadd_ps(qv[h], _mm512_loadu_ps(kr + 16 * h), t);
        part[jj] = t;
      } else {
        part[jj] = _mm512_setzero_ps();
      }
    }
    const __mmask16 valid = static_cast<__mmask16>(nb == 16 ? 0xFFFFu : ((1u << nb) - 1u));
    const __m512 s = reduce16(part);
    const float bm = _mm512_mask_reduce_max_ps(valid, s);
    if (!(bm <= mx)) {  // new running max (or NaN): rescale what was accumulated so far
      const float nm = std::max(mx, bm);
      const float alpha = mx == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(mx - nm);
      l *= alpha;
      const __m512 va = _mm512_set1_ps(alpha);
      for (int h = 0; h < HV; ++h) o[h] = _mm512_mul_ps(o[h], va);
      mx = nm;
    }
    const __m512 p = _mm512_maskz_mov_ps(valid, exp_avx(_mm512_sub_ps(s, _mm512_set1_ps(mx))));
    l += _mm512_reduce_add_ps(p);
    _mm512_store_ps(pb, p);
    for (int jj = 0; jj < nb; ++jj) {
      const __m512 pj = _mm512_set1_ps(pb[jj]);
      const float* vr = j0 + jj < nc ? V + (j0 + jj) * HD : vx;
      for (int h = 0; h < HV; ++h) o[h] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vr + 16 * h), o[h]);
    }
  }
  const __m512 inv = _mm512_set1_ps(1.f / l);
  for (int h = 0; h < HV; ++h) _mm512_storeu_ps(out + 16 * h, _mm512_mul_ps(o[h], inv));
}

void attend_scalar(const float* q, const float* K, const float* V, int64_t nc, const float* kx, const float* vx,
                   int hd, float* out) {
  const int64_t n = nc + 1;
  float mx = -std::numeric_limits<float>::infinity();
  float l = 0.f;
  float o[512];
  float s[16];
  for (int d = 0; d < hd; ++d) o[d] = 0.f;
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const int nb = static_cast<int>(std::min<int64_t>(16, n - j0));
    float bm = -std::numeric_limits<float>::infinity();
    for (int jj = 0; jj < nb; ++jj) {
      const float* kr = j0 + jj < nc ? K + (j0 + jj) * hd : kx;
      float t = 0.f;
      for (int d = 0; d < hd; ++d) t += q[d] * kr[d];
      s[jj] = t;
      bm = std::max(bm, t);
    }
    const float nm = std::max(mx, bm);
    const float alpha = mx == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(mx - nm);
    float ps = 0.f;
    for (int d = 0; d < hd; ++d) o[d] *= alpha;
    for (int jj = 0; jj < nb; ++jj) {
      const float p = std::exp(s[jj] - nm);
      ps += p;
      const float* vr = j0 + jj < nc ? V + (j0 + jj) * hd : vx;
      for (int d = 0; d < hd; ++d) o[d] += p * vr[d];
    }
    l = l * alpha + ps;
    mx = nm;
  }
  for (int d = 0; d < hd; ++d) out[d] = o[d] / l;
}

// HF rotate_half RoPE of one head: out[i] = (v[i] c[i] - v[i+h] s[i]) * scale,
// out[i+h] = (v[i+h] c[i] + v[i] s[i]) * scale (scale folds attention's 1/sqrt(head_dim) into q).
void rope_head(const float* v, const float* cs, const float* sn, int64_t half, float scale, float* out) {
  for (int64_t i = 0; i < half; ++i) {
    const float a = v[i], b = v[i + half];
    out[i] = (a * cs[i] - b * sn[i]) * scale;
    out[i + half] = (b * cs[i] + a * sn[i]) * scale;
  }
}

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
      const bool avx = use_avx();
      const Packed& W = P_;
      run_parallel(nt, [&](auto& team) {
        team.phase(M, [&](int64_t m) { quant_row(avx, xp + m * K, K, 1.f, nullptr, qx, m); });
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
};

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
        const std::string& activations, const std::string& head_activations)
      : parts_(activation_parts(activations)), head_parts_(activation_parts(head_activations)), L_(n_layers), H_(hidden), F_(ffn), NH_(n_heads), NKV_(n_kv_heads), V_(vocab), theta_(rope_theta),
        eps_(static_cast<float>(rms_eps)) {
    if (L_ <= 0 || H_ <= 0 || F_ <= 0 || NH_ <= 0 || NKV_ <= 0 || V_ <= 0)
      throw py::value_error("config: all sizes must be positive");
    if (H_ % NH_ != 0 || NH_ % NKV_ != 0) throw py::value_error("config: hidden % n_heads and n_heads % n_kv_heads");
    HD_ = H_ / NH_;
    if (HD_ % 2 != 0 || HD_ > 512) throw py::value_error("config: head_dim must be even and <= 512");
    if (H_ % QK != 0 || F_ % QK != 0) throw py::value_error("config: hidden and ffn must be multiples of 32");
    const size_t nl = static_cast<size_t>(L_);
    for (const auto* v : {&attn_norm, &ffn_norm, &qkv_q, &qkv_s, &qkv_m, &o_q, &o_s, &o_m, &gu_q, &gu_s, &gu_m, &dn_q,
                          &dn_s, &dn_m})
      if (v->size() != nl) throw py::value_error("every per-layer pointer list must have n_layers entries");
    QKVN_ = (NH_ + 2 * NKV_) * HD_;
    layers_.resize(nl);
    for (size_t i = 0; i < nl; ++i) {
      Layer& Ly = layers_[i];
      const auto* an = reinterpret_cast<const float*>(attn_norm[i]);
      const auto* fn = reinterpret_cast<const float*>(ffn_norm[i]);
      Ly.attn_norm.assign(an, an + H_);
      Ly.ffn_norm.assign(fn, fn + H_);
      Ly.qkv = pack_q4(reinterpret_cast<const uint8_t*>(qkv_q[i]), reinterpret_cast<const float*>(qkv_s[i]),
                       reinterpret_cast<const float*>(qkv_m[i]), QKVN_, H_);
      Ly.o = pack_q4(reinterpret_cast<const uint8_t*>(o_q[i]), reinterpret_cast<const float*>(o_s[i]),
                     reinterpret_cast<const float*>(o_m[i]), H_, NH_ * HD_);
      Ly.gate_up = pack_q4(reinterpret_cast<const uint8_t*>(gu_q[i]), reinterpret_cast<const float*>(gu_s[i]),
                           reinterpret_cast<const float*>(gu_m[i]), 2 * F_, H_);
      Ly.down = pack_q4(reinterpret_cast<const uint8_t*>(dn_q[i]), reinterpret_cast<const float*>(dn_s[i]),
                        reinterpret_cast<const float*>(dn_m[i]), H_, F_);
    }
    head_ = pack_q8(reinterpret_cast<const int8_t*>(emb_q), reinterpret_cast<const float*>(emb_s), V_, H_);
    const auto* fnorm = reinterpret_cast<const float*>(final_norm);
    final_norm_.assign(fnorm, fnorm + H_);
    inv_freq_.resize(static_cast<size_t>(HD_ / 2));
    for (int64_t i = 0; i < HD_ / 2; ++i)
      inv_freq_[i] = 1.0 / std::pow(theta_, static_cast<double>(2 * i) / static_cast<double>(HD_));
  }

  void step(const py::array& token_ids, const py::array& positions, const py::array& slots,
            const py::array& sample_rows, uintptr_t k_cache, uintptr_t v_cache, int64_t n_slots, int64_t max_len,
            const py::array& logits) {
    const auto i64 = py::dtype::of<int64_t>();
    check_array(token_ids, i64, 1, "token_ids");
    check_array(positions, i64, 1, "positions");
    check_array(slots, i64, 1, "slots");
    check_array(sample_rows, i64, 1, "sample_rows");
    check_array(logits, py::dtype::of<float>(), 2, "logits");
    const int64_t T = token_ids.shape(0), R = sample_rows.shape(0);
    if (positions.shape(0) != T) throw py::value_error("positions: length differs from token_ids");
    if (slots.shape(0) != T) throw py::value_error("slots: length differs from token_ids");
    if (logits.shape(0) != R || logits.shape(1) != V_)
      throw py::value_error("logits: expected shape [" + std::to_string(R) + ", " + std::to_string(V_) + "]");
    if (!logits.writeable()) throw py::value_error("logits: must be writeable");
    if (n_slots <= 0 || max_len <= 0) throw py::value_error("n_slots and max_len must be positive");
    if (!k_cache || !v_cache) throw py::value_error("k_cache/v_cache: null pointer");
    const int64_t* tok = cptr<int64_t>(token_ids);
    const int64_t* pos = cptr<int64_t>(positions);
    const int64_t* slt = cptr<int64_t>(slots);
    const int64_t* srow = cptr<int64_t>(sample_rows);
    int64_t max_pos = -1;
    for (int64_t t = 0; t < T; ++t) {
      if (tok[t] < 0 || tok[t] >= V_)
        throw py::value_error("token_ids[" + std::to_string(t) + "]=" + std::to_string(tok[t]) +
                              " is out of range [0, " + std::to_string(V_) + ")");
      if (pos[t] < 0 || pos[t] >= max_len)
        throw py::value_error("positions[" + std::to_string(t) + "]=" + std::to_string(pos[t]) +
                              " is out of range [0, max_len=" + std::to_string(max_len) + ")");
      if (slt[t] < 0 || slt[t] >= n_slots)
        throw py::value_error("slots[" + std::to_string(t) + "]=" + std::to_string(slt[t]) +
                              " is out of range [0, n_slots=" + std::to_string(n_slots) + ")");
      max_pos = std::max(max_pos, pos[t]);
    }
    for (int64_t i = 0; i < R; ++i)
      if (srow[i] < 0 || srow[i] >= T)
        throw py::value_error("sample_rows[" + std::to_string(i) + "]=" + std::to_string(srow[i]) +
                              " is out of range [0, " + std::to_string(T) + ")");
    bool distinct_slots = true;
    if (T > 1) {  // two rows writing the same cache position would race
      std::vector<std::pair<int64_t, int64_t>> keys(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; ++t) keys[t] = {slt[t], pos[t]};
      std::sort(keys.begin(), keys.end());
      for (size_t i = 1; i < keys.size(); ++i) {
        if (keys[i] == keys[i - 1])
          throw py::value_error("slots/positions: two rows write the same (slot, position) of the KV cache");
        if (keys[i].first == keys[i - 1].first) distinct_slots = false;
      }
    }
    if (T == 0) return;
    float* out = static_cast<float*>(const_cast<void*>(logits.data()));
    const int nt = num_threads_ > 0 ? num_threads_ : g_num_threads.load();
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    run(T, tok, pos, slt, R, srow, reinterpret_cast<float*>(k_cache), reinterpret_cast<float*>(v_cache), n_slots,
        max_len, max_pos, distinct_slots, out, nt);
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
  void ensure_rope(int64_t n) {
    if (n <= rope_len_) return;
    n = std::max<int64_t>({n, 2 * rope_len_, 256});
    const int64_t half = HD_ / 2;
    cos_.resize(static_cast<size_t>(n * half));
    sin_.resize(static_cast<size_t>(n * half));
    for (int64_t p = 0; p < n; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(p) * inv_freq_[i];
        cos_[p * half + i] = static_cast<float>(std::cos(a));
        sin_[p * half + i] = static_cast<float>(std::sin(a));
      }
    rope_len_ = n;
  }

  // Shared buffers, plus (for few rows) one private int8 activation buffer per thread: then every
  // thread quantizes the normed rows itself and the matmul does not wait for a phase of its own.
  void ensure_workspace(int64_t T, int64_t copies) {
    if (T <= ws_rows_ && copies <= ws_copies_) return;
    T = std::max(T, ws_rows_);
    copies = std::max(copies, ws_copies_);
    const int64_t kmax = std::max(H_, F_);
    x_.reserve(static_cast<size_t>(T * H_) * 4);
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
    const int64_t kmax = std::max(H_, F_) * 2;
    return QX{xq_.as<int8_t>() + copy * ws_rows_ * kmax,
              xd_.as<float>() + copy * ws_rows_ * (kmax / QK),
              xds_.as<float>() + copy * ws_rows_ * (kmax / QK),
              k * parts_,
              k * parts_ / QK,
              parts_ == 2 ? k : 0};
  }

  // Rows with distinct slots (decode-only steps) let every attention item write its own row's K/V
  // and attend in the same phase; prefill chunks need all their rows' K/V in the cache first.
  void run(int64_t T, const int64_t* tok, const int64_t* pos, const int64_t* slt, int64_t R, const int64_t* srow,
           float* kc, float* vc, int64_t S, int64_t max_len, int64_t max_pos, bool distinct_slots, float* logits,
           int nt) {
    ensure_rope(max_pos + 1);
    const bool priv = std::max(T, R) <= kPrivateRows;
    ensure_workspace(std::max(T, R), priv ? nt + 1 : 1);
    const bool avx = use_avx();
    const bool prof = profiling_;
    const bool fused = distinct_slots;
    float* x = x_.as<float>();
    float* qkv = qkv_.as<float>();
    float* gu = gu_.as<float>();
    const QX qh = qview(0, H_);  // shared: attention output (o's input), or every input when !priv
    const QX qf = qview(0, F_);
    const int64_t H = H_, F = F_, HD = HD_, NH = NH_, NKV = NKV_, QKVN = QKVN_, half = HD_ / 2;
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
          quant_row(avx, xr, H, rms_inv(avx, xr, H, eps_), w, dst, t);
        }
      };
      auto norm_phase = [&](const float* w) {
        if (!priv)
          team.phase(T, [&](int64_t t) {
            const float* xr = x + t * H;
            quant_row(avx, xr, H, rms_inv(avx, xr, H, eps_), w, qh, t);
          });
      };

      team.phase(T, [&](int64_t t) { q8_row(head_, tok[t], x + t * H); });
      mark(tid, kEmbed);
      for (int64_t l = 0; l < L_; ++l) {
        const Layer& Ly = layers_[l];
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
            const float* cs = cos_.data() + pos[t] * half;
            const float* sn = sin_.data() + pos[t] * half;
            for (int64_t h = 0; h < NKV; ++h) {
              const int64_t off = (((l * S + slt[t]) * NKV + h) * max_len + pos[t]) * HD;
              rope_head(row + (NH + h) * HD, cs, sn, half, 1.f, kc + off);
              std::memcpy(vc + off, row + (NH + NKV + h) * HD, static_cast<size_t>(HD) * 4);
            }
          });
          mark(tid, kRope);
        }
        auto attend_one = [&](int64_t t, int64_t h) {
          const int64_t kvh = h / group;
          const float* row = qkv + t * QKVN;
          const float* cs = cos_.data() + pos[t] * half;
          const float* sn = sin_.data() + pos[t] * half;
          float q[512], k[512], o[512];
          rope_head(row + h * HD, cs, sn, half, qscale, q);
          rope_head(row + (NH + kvh) * HD, cs, sn, half, 1.f, k);
          const float* v = row + (NH + NKV + kvh) * HD;
          const int64_t base = ((l * S + slt[t]) * NKV + kvh) * max_len * HD;
          if (fused && h % group == 0) {  // the only writer of (slot, kvh, pos); nobody reads it here
            std::memcpy(kc + base + pos[t] * HD, k, static_cast<size_t>(HD) * 4);
            std::memcpy(vc + base + pos[t] * HD, v, static_cast<size_t>(HD) * 4);
          }
          if (avx && HD == 64)
            attend_avx<4>(q, kc + base, vc + base, pos[t], k, v, o);
          else if (avx && HD == 128)
            attend_avx<8>(q, kc + base, vc + base, pos[t], k, v, o);
          else
            attend_scalar(q, kc + base, vc + base, pos[t], k, v, static_cast<int>(HD), o);
          if (HD % QK == 0) {
            for (int64_t g = 0; g < HD / QK; ++g) {
              const int64_t col = h * HD + g * QK;
              quant_block(avx, o + g * QK, qh, t, col / QK);
            }
          } else {  // heads do not align with quantization blocks: stage the output in gu (unused now)
            std::memcpy(gu + t * H + h * HD, o, static_cast<size_t>(HD) * 4);
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
          team.phase(T, [&](int64_t t) { quant_row(avx, gu + t * H, H, 1.f, nullptr, qh, t); });
        mark(tid, kAttn);
        team.phase(gemm_items(Ly.o, T), [&](int64_t i) { gemm_item(avx, Ly.o, qh, T, x, H, true, i); });
        mark(tid, kO);
        // ---- feed-forward block
        norm_phase(Ly.ffn_norm.data());
        mark(tid, kNorm);
        auto pro_ffn = [&] { if (priv) norm_rows(Ly.ffn_norm.data(), ph); };
        team.phase(
            gemm_items(Ly.gate_up, T),
            [&](int64_t i) { gemm_item(avx, Ly.gate_up, ph, T, gu, 2 * F, false, i); }, pro_ffn);
        mark(tid, kGateUp);
        auto silu_row = [&](int64_t t, const QX& dst) {
          const float* gr = gu + t * 2 * F;
          if (avx)
            silu_mul_quant_avx(gr, gr + F, F, dst, t);
          else
            silu_mul_quant_scalar(gr, gr + F, F, dst, t);
        };
        if (!priv) team.phase(T, [&](int64_t t) { silu_row(t, qf); });
        mark(tid, kSilu);
        auto pro_down = [&] {
          if (priv)
            for (int64_t t = 0; t < T; ++t) silu_row(t, pf);
        };
        team.phase(
            gemm_items(Ly.down, T), [&](int64_t i) { gemm_item(avx, Ly.down, pf, T, x, H, true, i); }, pro_down);
        mark(tid, kDown);
      }
      // The LM head's input: the same rows, with or without the residual term (head_parts_).
      QX hh = ph;
      if (head_parts_ == 1) hh.p2 = 0;
      auto final_row = [&](int64_t i, const QX& dst) {
        const float* xr = x + srow[i] * H;
        quant_row(avx, xr, H, rms_inv(avx, xr, H, eps_), final_norm_.data(), dst, i);
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
  int64_t L_, H_, F_, NH_, NKV_, V_, HD_ = 0, QKVN_ = 0;
  double theta_;
  float eps_;
  std::vector<Layer> layers_;
  Packed head_;
  std::vector<float> final_norm_;
  std::vector<double> inv_freq_;
  std::vector<float> cos_, sin_;
  int64_t rope_len_ = 0;
  AlignedBuf x_, qkv_, gu_, xq_, xd_, xds_;
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
  m.def("isa", [] { return std::string(isa_name()); }, "The matmul path a step uses now: avx512-vnni, avx2, scalar.");
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
                    const std::string&, const std::string&>(),
           py::arg("n_layers"), py::arg("hidden"), py::arg("ffn"), py::arg("n_heads"), py::arg("n_kv_heads"),
           py::arg("vocab"), py::arg("rope_theta"), py::arg("rms_eps"), py::arg("emb_q"), py::arg("emb_s"),
           py::arg("final_norm"), py::arg("attn_norm"), py::arg("ffn_norm"), py::arg("qkv_q"), py::arg("qkv_s"),
           py::arg("qkv_m"), py::arg("o_q"), py::arg("o_s"), py::arg("o_m"), py::arg("gu_q"), py::arg("gu_s"),
           py::arg("gu_m"), py::arg("dn_q"), py::arg("dn_s"), py::arg("dn_m"), py::arg("activations") = "int8x2",
           py::arg("head_activations") = "int8x2")
      .def("step", &Llama::step, py::arg("token_ids"), py::arg("positions"), py::arg("slots"), py::arg("sample_rows"),
           py::arg("k_cache"), py::arg("v_cache"), py::arg("n_slots"), py::arg("max_len"), py::arg("logits"))
      .def_property("num_threads", &Llama::num_threads, &Llama::set_num_threads)
      .def_property_readonly("activations", &Llama::activations)
      .def_property_readonly("head_activations", &Llama::head_activations)
      .def("set_profiling", &Llama::set_profiling)
      .def("profile", &Llama::profile, py::arg("reset") = false)
      .def_property_readonly("packed_bytes", &Llama::packed_bytes)
      .def_property_readonly("f16_scales", &Llama::f16_scales);
}
