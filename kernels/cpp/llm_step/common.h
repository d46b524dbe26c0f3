// Shared by every part of the C++ Llama step: includes, the AVX-512 / AVX2 target attributes, the
// block constants of the packed layout and the run-time choice of instruction set.
//
// Internal to kernels/cpp/llm_step.cpp, the one translation unit that includes it: everything is
// in an anonymous namespace (internal linkage, as when it was all one file), so nothing here is
// an interface for other code, and inlining and code generation are those of the single file.

#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
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

// The middle path on CPUs without AVX-512 VNNI (AMD Zen 2/3, older Xeons): AVX2 integer dot
// products for the matmuls (gemm.h) and AVX2 per-row work (avx2_rows.h).
bool use_avx2() { return !g_force_scalar.load(std::memory_order_relaxed) && cpu_has_avx2(); }

const char* isa_name() { return use_avx() ? "avx512-vnni" : use_avx2() ? "avx2" : "scalar"; }

// The path of the per-row work around the matmuls (quantization, norms, SwiGLU, attention), chosen
// once per call from the same switches as the matmuls' (row_dispatch.h).
enum class Isa { kScalar, kAvx2, kAvx512 };

Isa row_isa() { return use_avx() ? Isa::kAvx512 : use_avx2() ? Isa::kAvx2 : Isa::kScalar; }

// ----------------------------------------------------------------------------------------------
// fp16 storage of the KV cache: attention streams K/V from memory, and half the bytes is half the
// traffic (llama.cpp and vLLM keep K/V in 16 bits too). These portable conversions round to nearest
// even exactly as F16C's vcvtps2ph / vcvtph2ps do (NaN stays NaN, overflow goes to inf, subnormals
// are kept), so every ISA path stores and reads the same bits.

inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u | ((x >> 13) & 0x3ffu) : 0u));
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (x < 0x38800000u) {  // below 2^-14: a half subnormal (or zero)
    if (x < 0x33000000u) return static_cast<uint16_t>(sign);
    const int shift = 126 - static_cast<int>(x >> 23);
    const uint32_t m = (x & 0x7fffffu) | 0x800000u;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = x - 0x38000000u;  // rebias the exponent (127 -> 15)
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry into the exponent is right
  return static_cast<uint16_t>(sign | r);
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
  if (e == 0) {
    if (m == 0) {
      x = sign;
    } else {  // subnormal: normalise
      e = 113;
      while (!(m & 0x400u)) {
        m <<= 1;
        --e;
      }
      x = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
  } else if (e == 31) {
    x = sign | 0x7f800000u | (m << 13);
  } else {
    x = sign | ((e + 112) << 23) | (m << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ----------------------------------------------------------------------------------------------
// Paged KV cache: one sequence's keys (or values) of one layer and KV head, read through its block
// table. Position j lives in block blocks[j >> shift] at row j & mask; consecutive rows of a block
// are contiguous (hd fp16 values each), blocks are `stride` values apart in the pool
// (server/llm/kv_cache.py has the layout and why).
struct Pages {
  const uint16_t* base;    // the pool at (layer, kv head, block 0)
  const int64_t* blocks;   // the sequence's block table
  int64_t stride;          // values from one block to the next
  int shift;               // log2(block size)
  int64_t hd;
  const uint16_t* row(int64_t j) const {
    return base + blocks[j >> shift] * stride + (j & ((int64_t{1} << shift) - 1)) * hd;
  }
  // Rows j..j+n-1 when they lie in one block (then contiguous), else nullptr: attention takes a
  // group of keys from one base pointer, as from a flat array, and looks rows up one by one only
  // where a group straddles blocks.
  const uint16_t* run(int64_t j, int64_t n) const {
    const int64_t off = j & ((int64_t{1} << shift) - 1);
    return off + n <= (int64_t{1} << shift) ? base + blocks[j >> shift] * stride + off * hd : nullptr;
  }
};

}  // namespace
