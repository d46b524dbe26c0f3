// Activation quantization: int8 (and int8x2) rows with per-block scales (QX), the scalar and AVX-512
// block / row quantizers, and the RMS-norm factor they are fused with.
//
// Internal to kernels/cpp/llm_step.cpp, the one translation unit that includes it: everything is
// in an anonymous namespace (internal linkage, as when it was all one file), so nothing here is
// an interface for other code, and inlining and code generation are those of the single file.

#pragma once

#include "common.h"

namespace {

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

}  // namespace
