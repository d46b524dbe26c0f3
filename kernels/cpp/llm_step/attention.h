// Attention and the per-row elementwise work around it: exp, SwiGLU fused with quantization
// (silu_mul_quant), online-softmax attention over the KV cache (AVX-512 and scalar), RoPE.
//
// Internal to kernels/cpp/llm_step.cpp, the one translation unit that includes it: everything is
// in an anonymous namespace (internal linkage, as when it was all one file), so nothing here is
// an interface for other code, and inlining and code generation are those of the single file.

#pragma once

#include "activations.h"
#include "common.h"

namespace {

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

// gelu_tanh(gate) * up into out (out may be gate): GELU's tanh form written as a sigmoid,
// 0.5 a (1 + tanh(z)) = a / (1 + exp(-2 z)), z = sqrt(2/pi) (a + 0.044715 a^3) (Gemma's GeGLU).
AVX512_TARGET NOINLINE void gelu_tanh_mul_avx(const float* gate, const float* up, int64_t f, float* out) {
  const __m512 one = _mm512_set1_ps(1.f), c0 = _mm512_set1_ps(-2.f * 0.7978845608028654f),
               c1 = _mm512_set1_ps(0.044715f);
  int64_t i = 0;
  for (; i + 16 <= f; i += 16) {
    const __m512 a = _mm512_loadu_ps(gate + i);
    const __m512 z = _mm512_mul_ps(c0, _mm512_fmadd_ps(_mm512_mul_ps(c1, a), _mm512_mul_ps(a, a), a));
    const __m512 g = _mm512_div_ps(a, _mm512_add_ps(one, exp_avx(z)));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(g, _mm512_loadu_ps(up + i)));
  }
  for (; i < f; ++i) {
    const float a = gate[i];
    out[i] = a / (1.f + std::exp(-2.f * 0.7978845608028654f * (a + 0.044715f * a * a * a))) * up[i];
  }
}

void gelu_tanh_mul_scalar(const float* gate, const float* up, int64_t f, float* out) {
  for (int64_t i = 0; i < f; ++i) {
    const float a = gate[i];
    out[i] = a / (1.f + std::exp(-2.f * 0.7978845608028654f * (a + 0.044715f * a * a * a))) * up[i];
  }
}

// ----------------------------------------------------------------------------------------------
// Attention: one query head over keys lo..lo+nc-1 of one sequence's (layer, kv head) pages, then its
// own key; online softmax in blocks of 16 keys. q is already scaled by 1/sqrt(head_dim).

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

AVX512_TARGET inline __m512 load_half16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

AVX512_TARGET NOINLINE void to_half_avx(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = float_to_half(src[i]);
}

// Keys 0..nc-1 come from K/V (the cache, from position lo), key nc from kx/vx (this row's own key,
// not read back from the cache so that decode rows can write the cache in the same phase).
template <int HV>
AVX512_TARGET NOINLINE void attend_avx(const float* q, const Pages& K, const Pages& V, int64_t lo, int64_t nc,
                                       const uint16_t* kx, const uint16_t* vx, float* out) {
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
    // 16 cached keys in one block (the common case): one base pointer, no per-key lookups
    const uint16_t* kb = j0 + 16 <= nc ? K.run(lo + j0, 16) : nullptr;
    const uint16_t* vb = kb ? V.run(lo + j0, 16) : nullptr;
    __m512 part[16];
    if (kb) {
#pragma GCC unroll 16
      for (int jj = 0; jj < 16; ++jj) {
        const uint16_t* kr = kb + jj * HD;
        __m512 t = _mm512_mul_ps(qv[0], load_half16(kr));
        for (int h = 1; h < HV; ++h) t = _mm512_fmadd_ps(qv[h], load_half16(kr + 16 * h), t);
        part[jj] = t;
      }
    } else {
      for (int jj = 0; jj < 16; ++jj) {
        if (jj < nb) {
          const uint16_t* kr = j0 + jj < nc ? K.row(lo + j0 + jj) : kx;
          __m512 t = _mm512_mul_ps(qv[0], load_half16(kr));
          for (int h = 1; h < HV; ++h) t = _mm512_fmadd_ps(qv[h], load_half16(kr + 16 * h), t);
          part[jj] = t;
        } else {
          part[jj] = _mm512_setzero_ps();
        }
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
    if (vb) {
      for (int jj = 0; jj < 16; ++jj) {
        const __m512 pj = _mm512_set1_ps(pb[jj]);
        for (int h = 0; h < HV; ++h) o[h] = _mm512_fmadd_ps(pj, load_half16(vb + jj * HD + 16 * h), o[h]);
      }
    } else {
      for (int jj = 0; jj < nb; ++jj) {
        const __m512 pj = _mm512_set1_ps(pb[jj]);
        const uint16_t* vr = j0 + jj < nc ? V.row(lo + j0 + jj) : vx;
        for (int h = 0; h < HV; ++h) o[h] = _mm512_fmadd_ps(pj, load_half16(vr + 16 * h), o[h]);
      }
    }
  }
  const __m512 inv = _mm512_set1_ps(1.f / l);
  for (int h = 0; h < HV; ++h) _mm512_storeu_ps(out + 16 * h, _mm512_mul_ps(o[h], inv));
}

void attend_scalar(const float* q, const Pages& K, const Pages& V, int64_t lo, int64_t nc, const uint16_t* kx,
                   const uint16_t* vx, int hd, float* out) {
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
      const uint16_t* kr = j0 + jj < nc ? K.row(lo + j0 + jj) : kx;
      float t = 0.f;
      for (int d = 0; d < hd; ++d) t += q[d] * half_to_float(kr[d]);
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
      const uint16_t* vr = j0 + jj < nc ? V.row(lo + j0 + jj) : vx;
      for (int d = 0; d < hd; ++d) o[d] += p * half_to_float(vr[d]);
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

}  // namespace
