// Quantized GEMM over packed weights: the AVX-512 VNNI micro-kernel templates and their dispatch
// table (KernelTable), the AVX2 and portable scalar paths, and the cut of a matmul into work items.
//
// Internal to kernels/cpp/llm_step.cpp, the one translation unit that includes it: everything is
// in an anonymous namespace (internal linkage, as when it was all one file), so nothing here is
// an interface for other code, and inlining and code generation are those of the single file.

#pragma once

#include "activations.h"
#include "common.h"
#include "weights.h"

namespace {

// ----------------------------------------------------------------------------------------------
// Quantized GEMM: y[M, N] (=|+=) x[M, K] @ W[N, K]^T over packed tiles [t0, t1).

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

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

// Two or more rows on CPUs with AMX: tile dot products, bit-identical results (amx.h).
bool use_amx();
void gemm_amx(const Packed& W, const QX& x, int64_t m0, int64_t m1, float* y, int64_t ldy, bool accum, int64_t t0,
              int64_t t1);
constexpr int64_t kAmxMinRows = 32;  // below this, VNNI is faster (per-block scaling costs the tiles their edge)

// Rows per work item (row block) when M is large: the block's int8 activations stay in L2.
constexpr int64_t kRowBlock = 128;

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

// Rows are taken VR at a time as "virtual rows" (an output row's int8x2 terms are two of them):
// each weight vector is loaded and unpacked once per group and used for all VR, whose accumulators
// stay in registers (4 weight + 8 accumulator + 2 broadcast ymm). For Q4_1 the 8 maddubs products of
// a group are summed in int16 before one madd: |nibble x int8| pair sums are <= 2 * 15 * 127 = 3810,
// eight of them <= 30480 < 2^15. Q8_0 (the LM head, few rows) needs the madd per product.
AVX2_TARGET NOINLINE void gemm_avx2(const Packed& W, const QX& x, int64_t m0, int64_t m1, float* y, int64_t ldy,
                                    bool accum, int64_t t0, int64_t t1) {
  constexpr int VR = 4;
  const int64_t G = W.groups;
  const int parts = x.parts();
  const bool q4 = W.bits == 4;
  const int ss = W.ssize();
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n0 = t * TILE;
    const int nvalid = static_cast<int>(std::min<int64_t>(TILE, W.n - n0));
    for (int64_t v0 = m0 * parts; v0 < m1 * parts; v0 += VR) {  // parts 2: v0 even, an output row's terms together
      const int nv = static_cast<int>(std::min<int64_t>(VR, m1 * parts - v0));
      const int8_t* xv[VR];
      int64_t bv[VR];  // block index of group 0 of each virtual row
      for (int vi = 0; vi < VR; ++vi) {
        const int64_t v = v0 + std::min(vi, nv - 1), m = v / parts, p = v % parts;
        xv[vi] = x.q + m * x.ld + p * x.p2;
        bv[vi] = m * x.gld + p * (x.p2 / QK);
      }
      __m256 acc[VR][2];
      for (int vi = 0; vi < VR; ++vi) acc[vi][0] = acc[vi][1] = _mm256_setzero_ps();
      for (int64_t g = 0; g < G; ++g) {
        const uint8_t* r = W.record(t, g);
        __m256i s[VR][2];
        if (q4) {
          __m256i h[VR][2];
          for (int vi = 0; vi < VR; ++vi) h[vi][0] = h[vi][1] = _mm256_setzero_si256();
          for (int j = 0; j < 4; ++j) {
            const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 64 * j));
            const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 64 * j + 32));
            const __m256i w0l = _mm256_and_si256(r0, m4), w0h = _mm256_and_si256(_mm256_srli_epi16(r0, 4), m4);
            const __m256i w1l = _mm256_and_si256(r1, m4), w1h = _mm256_and_si256(_mm256_srli_epi16(r1, 4), m4);
#pragma GCC unroll 4
            for (int vi = 0; vi < VR; ++vi) {
              if (vi >= nv) break;
              const __m256i xl = _mm256_set1_epi32(load_i32(xv[vi] + g * QK + 4 * j));
              const __m256i xh = _mm256_set1_epi32(load_i32(xv[vi] + g * QK + 16 + 4 * j));
              h[vi][0] = _mm256_add_epi16(h[vi][0], _mm256_add_epi16(_mm256_maddubs_epi16(w0l, xl),
                                                                     _mm256_maddubs_epi16(w0h, xh)));
              h[vi][1] = _mm256_add_epi16(h[vi][1], _mm256_add_epi16(_mm256_maddubs_epi16(w1l, xl),
                                                                     _mm256_maddubs_epi16(w1h, xh)));
            }
          }
          for (int vi = 0; vi < nv; ++vi) {
            s[vi][0] = _mm256_madd_epi16(h[vi][0], ones);
            s[vi][1] = _mm256_madd_epi16(h[vi][1], ones);
          }
        } else {
          for (int vi = 0; vi < VR; ++vi) s[vi][0] = s[vi][1] = _mm256_setzero_si256();
          for (int c = 0; c < 8; ++c) {
            const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 64 * c));
            const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 64 * c + 32));
            const __m256i a0 = _mm256_sign_epi8(w0, w0), a1 = _mm256_sign_epi8(w1, w1);
#pragma GCC unroll 4
            for (int vi = 0; vi < VR; ++vi) {
              if (vi >= nv) break;
              const __m256i xc = _mm256_set1_epi32(load_i32(xv[vi] + g * QK + 4 * c));
              s[vi][0] = _mm256_add_epi32(s[vi][0], dot4_u8s8(a0, _mm256_sign_epi8(xc, w0)));
              s[vi][1] = _mm256_add_epi32(s[vi][1], dot4_u8s8(a1, _mm256_sign_epi8(xc, w1)));
            }
          }
        }
        const __m256 sc0 = load_scales8(r + W.qbytes, W.f16), sc1 = load_scales8(r + W.qbytes + 8 * ss, W.f16);
        const uint8_t* mn = r + W.qbytes + TILE * ss;
        for (int vi = 0; vi < nv; ++vi) {
          const __m256 dx = _mm256_set1_ps(x.d[bv[vi] + g]);
          acc[vi][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[vi][0]), _mm256_mul_ps(sc0, dx), acc[vi][0]);
          acc[vi][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[vi][1]), _mm256_mul_ps(sc1, dx), acc[vi][1]);
          if (q4) {  // the min term: mins * d * sum(q) of this term
            const __m256 vds = _mm256_set1_ps(x.ds[bv[vi] + g]);
            acc[vi][0] = _mm256_fmadd_ps(load_scales8(mn, W.f16), vds, acc[vi][0]);
            acc[vi][1] = _mm256_fmadd_ps(load_scales8(mn + 8 * ss, W.f16), vds, acc[vi][1]);
          }
        }
      }
      for (int vi = 0; vi < nv; vi += parts) {
        __m256 a0 = acc[vi][0], a1 = acc[vi][1];
        if (parts == 2) {
          a0 = _mm256_add_ps(a0, acc[vi + 1][0]);
          a1 = _mm256_add_ps(a1, acc[vi + 1][1]);
        }
        float* yr = y + ((v0 + vi) / parts) * ldy + n0;
        alignas(32) float tmp[TILE];
        _mm256_store_ps(tmp, a0);
        _mm256_store_ps(tmp + 8, a1);
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
  if (avx && m1 - m0 >= kAmxMinRows && (x.parts() == 1 || x.ld == 2 * x.p2) && use_amx())
    gemm_amx(W, x, m0, m1, y, ldy, accum, t0, t1);
  else if (avx)
    gemm_avx(W, x, m0, m1, y, ldy, accum, t0, t1);
  else if (use_avx2())
    gemm_avx2(W, x, m0, m1, y, ldy, accum, t0, t1);
  else
    gemm_scalar(W, x, m0, m1, y, ldy, accum, t0, t1);
}

}  // namespace
