// Intel AMX (int8 tiles) for matmuls of many rows (kAmxMinRows, gemm.h): prefill chunks and large
// decode batches. Fewer rows stay on the AVX-512 VNNI kernels.
//
// What the tiles buy here, measured (Xeon with AMX, 2 threads, int8x2 activations, Q4_1):
// a 1536 x 576 matmul 1.25x faster at 64-256 rows, slower below ~16 rows; prefill of SmolLM2
// +12% (1,243 -> 1,387 tok/s at 256 tokens). Not the 8x that the raw multiply-adds suggest:
// GGUF scales weights per block of 32 inputs and we scale activations per block too, so each
// block's int32 tile result must be stored and scaled in fp32 before the next block (K = 32 per
// tile dot product, one 1 KiB tile store per block), and that fp32 work is what remains.
//
// Exactness: a block's integer dot products are exact in both paths, and the fp32 scaling below
// runs the very same operations in the same order as q4_kernel_avx / q8_kernel_avx
// (acc = fma(float(dot_p), w_scale * x_scale_p, acc) for each activation term p, then the Q4_1
// min term with the summed x-scales), so every output is bit-identical to the VNNI path (tests
// compare the two with set_force_no_amx), and a token's logits do not depend on how many rows
// shared its step.
//
// Tiles: A = up to 16 activation rows of one block (int8x2: (token, term) rows, which lie at a
// uniform stride), B = one packed weight tile's block as 8 rows of 16 x 4 bytes (the Q8_0 record
// is already in that layout; Q4_1 nibbles are widened to bytes once per call), C = rows x 16 int32.
// Linux hands AMX state to a process only after arch_prctl(ARCH_REQ_XCOMP_PERM); without it (or on
// CPUs without AMX, e.g. AMD Zen 4) the VNNI path runs, unchanged.
//
// Internal to kernels/cpp/llm_step.cpp, the one translation unit that includes it.

#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <cpuid.h>

#include "activations.h"
#include "common.h"
#include "weights.h"

#define AMX_TARGET \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,fma,f16c")))

namespace {

std::atomic<bool> g_force_no_amx{false};

// CPUID.(7,0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8; then ask the kernel for the tile data state
// (ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18), once per process.
bool cpu_has_amx() {
  static const bool ok = [] {
    if (!cpu_has_avx512_vnni()) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!((d >> 24) & 1u) || !((d >> 25) & 1u)) return false;
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  }();
  return ok;
}

bool use_amx() { return use_avx() && !g_force_no_amx.load(std::memory_order_relaxed) && cpu_has_amx(); }

// Palette 1: 64 bytes; colsb[i] at 16 + 2 i (uint16), rows[i] at 48 + i.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Two tile sets, so that one block's tile store overlaps the next block's dot product:
// set s = tmm(3 s) A, tmm(3 s + 1) B, tmm(3 s + 2) C. A holds up to 16 activation rows of 32 int8:
// with int8x2 the rows are (token, term) pairs, which lie at a uniform stride in QX (ld = 2 p2).
AMX_TARGET inline void amx_configure(int rows) {
  // Loading a tile configuration (and releasing it) costs far more than a small matmul's work;
  // keep it while it is ours. Another library on this thread (oneDNN) may have loaded its own:
  // compare with what is loaded, a cheap store, instead of trusting a cached value.
  alignas(64) TileConfig now;
  _tile_storeconfig(&now);
  asm volatile("" ::: "memory");
  if (now.palette == 1 && now.rows[0] == rows && now.rows[2] == rows && now.rows[1] == QK / 4 && now.colsb[0] == QK &&
      now.rows[3] == rows && now.rows[5] == rows && now.colsb[4] == 64)
    return;
  TileConfig cfg;
  for (int s = 0; s < 2; ++s) {
    cfg.colsb[3 * s] = QK, cfg.rows[3 * s] = static_cast<uint8_t>(rows);
    cfg.colsb[3 * s + 1] = 64, cfg.rows[3 * s + 1] = QK / 4;
    cfg.colsb[3 * s + 2] = 64, cfg.rows[3 * s + 2] = static_cast<uint8_t>(rows);
  }
  asm volatile("" ::: "memory");
  _tile_loadconfig(&cfg);
}

// Widen a Q4_1 record's 256 nibble bytes into the 8 x 64 B-tile rows: row j = low nibbles of
// chunk j (inputs 4j..4j+3), row 4 + j = high nibbles (inputs 16 + 4j..).
AMX_TARGET inline void widen_q4(const uint8_t* r, uint8_t* out) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int j = 0; j < 4; ++j) {
    const __m512i raw = _mm512_loadu_si512(r + 64 * j);
    _mm512_store_si512(out + 64 * j, _mm512_and_si512(raw, m4));
    _mm512_store_si512(out + 64 * (4 + j), _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4));
  }
}

// One block's integer dot products on tiles (A, B, C) = (TA, TB, TC): C = A(block) . B(tile, block).
// The tile numbers are literal tokens (they are spelled into the instructions), hence a macro.
#define AMX_BLOCK(TA, TB, TC, Q4, b, a, lda, c) \
  do {                                           \
    _tile_loadd(TB, (b), 64);                    \
    _tile_loadd(TA, (a), (lda));                 \
    _tile_zero(TC);                              \
    if (Q4)                                      \
      _tile_dpbsud(TC, TA, TB);                  \
    else                                         \
      _tile_dpbssd(TC, TA, TB);                  \
    _tile_stored(TC, (c), 64);                   \
  } while (0)

// Rows [m0, m1) x tiles [t0, t1) (within one quad), any number of rows. Q4_1 records are first
// widened to bytes for the whole quad (`wide`), once for all rows. Per weight tile and block of rows:
// first every block's dot products into `cbuf` (tiles), then the fp32 scaling, one output row at a
// time with its accumulator in a register, in the VNNI kernels' order.
template <int P, bool Q4>
AMX_TARGET NOINLINE void gemm_amx_t(const Packed& W, const QX& x, int64_t m0, int64_t m1, float* y, int64_t ldy,
                                    bool accum, int64_t t0, int64_t t1, int32_t* cbuf, uint8_t* wide) {
  constexpr int TOK = 16 / P;  // tokens per A tile
  const int64_t G = W.groups;
  const bool f16 = W.f16;
  const int ss = W.ssize();
  const int64_t lda = x.ld / P;  // stride between (token, term) rows
  auto bptr = [&](int64_t t, int64_t g) -> const uint8_t* {
    return Q4 ? wide + ((t - t0) * G + g) * 512 : W.record(t, g);
  };
  if (Q4)
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t g = 0; g < G; ++g) widen_q4(W.record(t, g), wide + ((t - t0) * G + g) * 512);
  asm volatile("" ::: "memory");
  int configured = -1;
  for (int64_t mb = m0; mb < m1; mb += TOK) {
    const int mr = static_cast<int>(std::min<int64_t>(TOK, m1 - mb));
    if (mr * P != configured) {
      amx_configure(mr * P);
      configured = mr * P;
    }
    const int8_t* a = x.q + mb * x.ld;
    for (int64_t t = t0; t < t1; ++t) {
      int64_t g = 0;
      for (; g + 1 < G; g += 2) {
        AMX_BLOCK(0, 1, 2, Q4, bptr(t, g), a + g * QK, lda, cbuf + g * 256);
        AMX_BLOCK(3, 4, 5, Q4, bptr(t, g + 1), a + (g + 1) * QK, lda, cbuf + (g + 1) * 256);
      }
      if (g < G) AMX_BLOCK(0, 1, 2, Q4, bptr(t, g), a + g * QK, lda, cbuf + g * 256);
      asm volatile("" ::: "memory");
      // Four rows at a time: four independent fma chains (one chain is latency-bound).
      for (int m = 0; m < mr; m += 4) {
        const int nr = std::min(4, mr - m);
        const int64_t pb = x.p2 / QK;  // blocks to the second term's scales
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int64_t k = 0; k < G; ++k) {
          const uint8_t* r = W.record(t, k);
          const __m512 sv = load_scales16(r + W.qbytes, f16);
          const __m512 mv = Q4 ? load_scales16(r + W.qbytes + TILE * ss, f16) : _mm512_setzero_ps();
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) {
            if (i >= nr) break;
            const int64_t row = mb + m + i;
            const float* d0 = x.d + row * x.gld;
            const int32_t* c = cbuf + k * 256 + (m + i) * P * 16;
            for (int p = 0; p < P; ++p) {
              const __m512 dot = _mm512_cvtepi32_ps(_mm512_load_si512(c + p * 16));
              acc[i] = _mm512_fmadd_ps(dot, _mm512_mul_ps(sv, _mm512_set1_ps(d0[p * pb + k])), acc[i]);
            }
            if (Q4) {
              const float* ds0 = x.ds + row * x.gld;
              float dsum = ds0[k];
              if (P == 2) dsum += ds0[pb + k];
              acc[i] = _mm512_fmadd_ps(mv, _mm512_set1_ps(dsum), acc[i]);
            }
          }
        }
        for (int i = 0; i < nr; ++i) store_tile(y + (mb + m + i) * ldy, t * TILE, W.n, acc[i], accum);
      }
    }
  }
}

void gemm_amx(const Packed& W, const QX& x, int64_t m0, int64_t m1, float* y, int64_t ldy, bool accum, int64_t t0,
              int64_t t1) {
  thread_local AlignedBuf cbuf, wbuf;  // per block: 16 rows x 16 int32; per (tile, block): 512 bytes
  cbuf.reserve(static_cast<size_t>(W.groups) * 256 * sizeof(int32_t));
  if (W.bits == 4) wbuf.reserve(static_cast<size_t>(QUAD * W.groups) * 512);
  int32_t* c = reinterpret_cast<int32_t*>(cbuf.p);
  uint8_t* w = wbuf.p;
  const bool q4 = W.bits == 4;
  if (x.parts() == 2) {
    if (q4)
      gemm_amx_t<2, true>(W, x, m0, m1, y, ldy, accum, t0, t1, c, w);
    else
      gemm_amx_t<2, false>(W, x, m0, m1, y, ldy, accum, t0, t1, c, w);
  } else if (q4) {
    gemm_amx_t<1, true>(W, x, m0, m1, y, ldy, accum, t0, t1, c, w);
  } else {
    gemm_amx_t<1, false>(W, x, m0, m1, y, ldy, accum, t0, t1, c, w);
  }
}

}  // namespace
