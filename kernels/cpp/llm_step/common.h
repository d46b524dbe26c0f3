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
// Paged KV cache: one sequence's keys (or values) of one layer and KV head, read through its block
// table. Position j lives in block blocks[j >> shift] at row j & mask; consecutive rows of a block
// are contiguous (hd floats each), blocks are `stride` floats apart in the pool
// (server/llm/kv_cache.py has the layout and why).
struct Pages {
  const float* base;       // the pool at (layer, block 0, kv head)
  const int64_t* blocks;   // the sequence's block table
  int64_t stride;          // floats from one block to the next
  int shift;               // log2(block size)
  int64_t hd;
  const float* row(int64_t j) const {
    return base + blocks[j >> shift] * stride + (j & ((int64_t{1} << shift) - 1)) * hd;
  }
  // Rows j..j+n-1 when they lie in one block (then contiguous), else nullptr: attention takes a
  // group of keys from one base pointer, as from a flat array, and looks rows up one by one only
  // where a group straddles blocks.
  const float* run(int64_t j, int64_t n) const {
    const int64_t off = j & ((int64_t{1} << shift) - 1);
    return off + n <= (int64_t{1} << shift) ? base + blocks[j >> shift] * stride + off * hd : nullptr;
  }
};

}  // namespace
