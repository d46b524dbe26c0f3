// The AVX2 path for the per-row work around the matmuls: activation quantization (int8 / int8x2),
// the RMS-norm factor, SwiGLU fused with quantization, GeGLU, and online-softmax attention.
//
// Why: on a CPU without AVX-512 (AMD Zen 2/3, most cloud x86 before 2022) only the matmuls had a
// vector path, so a 512-token prefill spent 40 % of its time in scalar attention and another 9 % in
// scalar quantization and SwiGLU (SmolLM2-135M, 2 cores, AVX2 forced on a Zen 4: 256 tokens/s).
// These are the AVX-512 functions of activations.h / attention.h at half width, written so that the
// quantized int8 values are the scalar path's exactly (same scale, cvtps2dq rounds half to even
// like round_even, the residual with one fma), and only float summation order differs elsewhere.
//
// Internal to kernels/cpp/llm_step.cpp, the one translation unit that includes it: everything is
// in an anonymous namespace (internal linkage), so nothing here is an interface for other code.

#pragma once

#include "activations.h"
#include "common.h"

namespace {

AVX2_TARGET inline float hsum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

AVX2_TARGET inline float hmax8(__m256 v) {
  const __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(t, _mm_movehdup_ps(t)));
}

AVX2_TARGET inline int hsum8i(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i t = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, _MM_SHUFFLE(2, 3, 0, 1))));
}

// Cephes expf as in exp_avx (attention.h). AVX2 has no scalef: 2^n is built in the exponent bits,
// so x is clamped to [-87.3, 88.3] (n in [-126, 127], a normal float). NaN stays NaN (2nd operand).
AVX2_TARGET inline __m256 exp_avx2(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.3f), x);
  x = _mm256_min_ps(_mm256_set1_ps(88.3f), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// ----------------------------------------------------------------------------------------------
// Quantization of one block of 32 values held in four vectors

AVX2_TARGET inline void quant_block_avx2(const __m256 (&v)[4], int8_t* q, float* d, float* ds) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256 big = _mm256_set1_ps(std::numeric_limits<float>::max());
  __m256 amax = _mm256_setzero_ps();
  int finite = 0xFF;
  for (int i = 0; i < 4; ++i) {
    const __m256 a = _mm256_andnot_ps(sign, v[i]);
    finite &= _mm256_movemask_ps(_mm256_cmp_ps(a, big, _CMP_LE_OQ));  // NaN and inf fail
    amax = _mm256_max_ps(amax, a);
  }
  if (finite != 0xFF) {
    std::memset(q, 0, QK);
    *d = *ds = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  const float dd = hmax8(amax) / 127.f;
  const float id = dd > 0.f ? 1.f / dd : 0.f;
  if (!std::isfinite(id)) {
    float tmp[QK];
    for (int i = 0; i < 4; ++i) _mm256_storeu_ps(tmp + 8 * i, v[i]);
    quant_block_scalar(tmp, q, d, ds);
    return;
  }
  const __m256 vid = _mm256_set1_ps(id);
  __m256i qi[4];
  for (int i = 0; i < 4; ++i) qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], vid));  // |.| <= 127
  const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
  // packs work per 128-bit lane: [0lo 1lo 0hi 1hi] then [01lo 23lo 01hi 23hi]; the permute restores order
  const __m256i w01 = _mm256_packs_epi32(qi[0], qi[1]);
  const __m256i w23 = _mm256_packs_epi32(qi[2], qi[3]);
  const __m256i b = _mm256_packs_epi16(w01, w23);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  *d = dd;
  *ds = dd * static_cast<float>(hsum8i(sum));
}

AVX2_TARGET inline void quant_block2_avx2(const __m256 (&v)[4], int8_t* q, float* d, float* ds, int64_t p2) {
  quant_block_avx2(v, q, d, ds);
  if (p2 <= 0) return;
  const __m256 vd = _mm256_set1_ps(*d);
  __m256 r[4];
  for (int i = 0; i < 4; ++i) {
    const __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8 * i))));
    r[i] = _mm256_fnmadd_ps(vd, qf, v[i]);  // v - d q with one rounding, as the scalar fma
  }
  quant_block_avx2(r, q + p2, d + p2 / QK, ds + p2 / QK);
}

AVX2_TARGET NOINLINE void quant_block_avx2_ptr(const float* v, int8_t* q, float* d, float* ds, int64_t p2) {
  const __m256 x[4] = {_mm256_loadu_ps(v), _mm256_loadu_ps(v + 8), _mm256_loadu_ps(v + 16), _mm256_loadu_ps(v + 24)};
  quant_block2_avx2(x, q, d, ds, p2);
}

AVX2_TARGET NOINLINE void quant_row_avx2(const float* x, int64_t k, float mul, const float* w, int8_t* q, float* d,
                                         float* ds, int64_t p2) {
  const __m256 vm = _mm256_set1_ps(mul);
  for (int64_t g = 0; g < k / QK; ++g) {
    __m256 v[4];
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_mul_ps(_mm256_loadu_ps(x + g * QK + 8 * i), vm);
      if (w) v[i] = _mm256_mul_ps(v[i], _mm256_loadu_ps(w + g * QK + 8 * i));
    }
    quant_block2_avx2(v, q + g * QK, d + g, ds + g, p2);
  }
}

AVX2_TARGET NOINLINE float rms_inv_avx2(const float* x, int64_t k, float eps) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    acc0 = _mm256_fmadd_ps(a, a, acc0);
    acc1 = _mm256_fmadd_ps(b, b, acc1);
  }
  float ss = hsum8(_mm256_add_ps(acc0, acc1));
  for (; i < k; ++i) ss += x[i] * x[i];
  return 1.f / std::sqrt(ss / static_cast<float>(k) + eps);
}

// silu(gate) * up for a row of f values, quantized into row `row` of qx.
AVX2_TARGET NOINLINE void silu_mul_quant_avx2(const float* gate, const float* up, int64_t f, const QX& qx,
                                              int64_t row) {
  const __m256 one = _mm256_set1_ps(1.f);
  for (int64_t g = 0; g < f / QK; ++g) {
    __m256 h[4];
    for (int i = 0; i < 4; ++i) {
      const __m256 a = _mm256_loadu_ps(gate + g * QK + 8 * i);
      const __m256 u = _mm256_loadu_ps(up + g * QK + 8 * i);
      const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), a));
      h[i] = _mm256_mul_ps(_mm256_div_ps(a, _mm256_add_ps(one, e)), u);
    }
    quant_block2_avx2(h, qx.q + row * qx.ld + g * QK, qx.d + row * qx.gld + g, qx.ds + row * qx.gld + g, qx.p2);
  }
}

// gelu_tanh(gate) * up into out (out may be gate), as gelu_tanh_mul_avx.
AVX2_TARGET NOINLINE void gelu_tanh_mul_avx2(const float* gate, const float* up, int64_t f, float* out) {
  const __m256 one = _mm256_set1_ps(1.f), c0 = _mm256_set1_ps(-2.f * 0.7978845608028654f),
               c1 = _mm256_set1_ps(0.044715f);
  int64_t i = 0;
  for (; i + 8 <= f; i += 8) {
    const __m256 a = _mm256_loadu_ps(gate + i);
    const __m256 z = _mm256_mul_ps(c0, _mm256_fmadd_ps(_mm256_mul_ps(c1, a), _mm256_mul_ps(a, a), a));
    const __m256 g = _mm256_div_ps(a, _mm256_add_ps(one, exp_avx2(z)));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(g, _mm256_loadu_ps(up + i)));
  }
  for (; i < f; ++i) {
    const float a = gate[i];
    out[i] = a / (1.f + std::exp(-2.f * 0.7978845608028654f * (a + 0.044715f * a * a * a))) * up[i];
  }
}

// ----------------------------------------------------------------------------------------------
// Attention: one query head over keys lo..lo+nc-1 of the cache and its own key kx (see attend_avx);
// online softmax in blocks of 8 keys whose 8 dot products are reduced together.

// Lane i of the result is the sum of the 8 lanes of v[i].
AVX2_TARGET inline __m256 reduce8(const __m256* v) {
  const __m256 t0 = _mm256_hadd_ps(v[0], v[1]), t1 = _mm256_hadd_ps(v[2], v[3]);
  const __m256 t2 = _mm256_hadd_ps(v[4], v[5]), t3 = _mm256_hadd_ps(v[6], v[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);  // [0..3 low halves, 0..3 high halves]
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

AVX2_TARGET inline __m256 load_half8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

AVX2_TARGET NOINLINE void to_half_avx2(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = float_to_half(src[i]);
}

template <int HV>
AVX2_TARGET NOINLINE void attend_avx2(const float* q, const Pages& K, const Pages& V, int64_t lo, int64_t nc,
                                      const uint16_t* kx, const uint16_t* vx, float* out) {
  constexpr int HD = HV * 8;
  const int64_t n = nc + 1;
  __m256 qv[HV], o[HV];
  for (int h = 0; h < HV; ++h) {
    qv[h] = _mm256_loadu_ps(q + 8 * h);
    o[h] = _mm256_setzero_ps();
  }
  float mx = -std::numeric_limits<float>::infinity();
  float l = 0.f;
  alignas(32) float sb[8], pb[8];
  for (int64_t j0 = 0; j0 < n; j0 += 8) {
    const int nb = static_cast<int>(std::min<int64_t>(8, n - j0));
    const uint16_t* kb = j0 + 8 <= nc ? K.run(lo + j0, 8) : nullptr;  // 8 cached keys in one block
    const uint16_t* vb = kb ? V.run(lo + j0, 8) : nullptr;
    __m256 part[8];
#pragma GCC unroll 8
    for (int jj = 0; jj < 8; ++jj) {
      if (jj < nb) {
        const uint16_t* kr = kb ? kb + jj * HD : j0 + jj < nc ? K.row(lo + j0 + jj) : kx;
        __m256 t = _mm256_mul_ps(qv[0], load_half8(kr));
        for (int h = 1; h < HV; ++h) t = _mm256_fmadd_ps(qv[h], load_half8(kr + 8 * h), t);
        part[jj] = t;
      } else {
        part[jj] = _mm256_setzero_ps();
      }
    }
    const __m256 s = reduce8(part);
    _mm256_store_ps(sb, s);
    float bm = sb[0];
    for (int jj = 1; jj < nb; ++jj) bm = std::max(bm, sb[jj]);
    if (!(bm <= mx)) {  // new running max (or NaN): rescale what was accumulated so far
      const float nm = std::max(mx, bm);
      const float alpha = mx == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(mx - nm);
      l *= alpha;
      const __m256 va = _mm256_set1_ps(alpha);
      for (int h = 0; h < HV; ++h) o[h] = _mm256_mul_ps(o[h], va);
      mx = nm;
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nb), lane));
    const __m256 p = _mm256_and_ps(valid, exp_avx2(_mm256_sub_ps(s, _mm256_set1_ps(mx))));
    l += hsum8(p);
    _mm256_store_ps(pb, p);
    for (int jj = 0; jj < nb; ++jj) {
      const __m256 pj = _mm256_set1_ps(pb[jj]);
      const uint16_t* vr = vb ? vb + jj * HD : j0 + jj < nc ? V.row(lo + j0 + jj) : vx;
      for (int h = 0; h < HV; ++h) o[h] = _mm256_fmadd_ps(pj, load_half8(vr + 8 * h), o[h]);
    }
  }
  const __m256 inv = _mm256_set1_ps(1.f / l);
  for (int h = 0; h < HV; ++h) _mm256_storeu_ps(out + 8 * h, _mm256_mul_ps(o[h], inv));
}

}  // namespace
