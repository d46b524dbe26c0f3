// The per-row work around the matmuls, dispatched on the path chosen for the call (Isa, common.h):
// AVX-512 (activations.h, attention.h), AVX2 (avx2_rows.h) or scalar. Every path quantizes to the
// same int8 values; float results differ by summation order only.
//
// Internal to kernels/cpp/llm_step.cpp, the one translation unit that includes it: everything is
// in an anonymous namespace (internal linkage), so nothing here is an interface for other code.

#pragma once

#include "activations.h"
#include "attention.h"
#include "avx2_rows.h"
#include "common.h"

namespace {

// Block g (32 values at v) of row `row` of qx.
void quant_block(Isa isa, const float* v, const QX& qx, int64_t row, int64_t g) {
  int8_t* q = qx.q + row * qx.ld + g * QK;
  float* d = qx.d + row * qx.gld + g;
  float* ds = qx.ds + row * qx.gld + g;
  if (isa == Isa::kAvx512)
    quant_block_avx_ptr(v, q, d, ds, qx.p2);
  else if (isa == Isa::kAvx2)
    quant_block_avx2_ptr(v, q, d, ds, qx.p2);
  else
    quant_block2_scalar(v, q, d, ds, qx.p2);
}

// x[i] * mul * w[i] (w may be null) quantized into row `row` of qx.
void quant_row(Isa isa, const float* x, int64_t k, float mul, const float* w, const QX& qx, int64_t row) {
  int8_t* q = qx.q + row * qx.ld;
  float* d = qx.d + row * qx.gld;
  float* ds = qx.ds + row * qx.gld;
  if (isa == Isa::kAvx512)
    quant_row_avx(x, k, mul, w, q, d, ds, qx.p2);
  else if (isa == Isa::kAvx2)
    quant_row_avx2(x, k, mul, w, q, d, ds, qx.p2);
  else
    quant_row_scalar(x, k, mul, w, q, d, ds, qx.p2);
}

float rms_inv(Isa isa, const float* x, int64_t k, float eps) {
  if (isa == Isa::kAvx512) return rms_inv_avx(x, k, eps);
  if (isa == Isa::kAvx2) return rms_inv_avx2(x, k, eps);
  return rms_inv_scalar(x, k, eps);
}

void silu_mul_quant(Isa isa, const float* gate, const float* up, int64_t f, const QX& qx, int64_t row) {
  if (isa == Isa::kAvx512)
    silu_mul_quant_avx(gate, up, f, qx, row);
  else if (isa == Isa::kAvx2)
    silu_mul_quant_avx2(gate, up, f, qx, row);
  else
    silu_mul_quant_scalar(gate, up, f, qx, row);
}

void gelu_tanh_mul(Isa isa, const float* gate, const float* up, int64_t f, float* out) {
  if (isa == Isa::kAvx512)
    gelu_tanh_mul_avx(gate, up, f, out);
  else if (isa == Isa::kAvx2)
    gelu_tanh_mul_avx2(gate, up, f, out);
  else
    gelu_tanh_mul_scalar(gate, up, f, out);
}

// n floats to fp16 (round to nearest even), the KV cache's storage.
void to_half(Isa isa, const float* src, int64_t n, uint16_t* dst) {
  if (isa == Isa::kAvx512)
    to_half_avx(src, n, dst);
  else if (isa == Isa::kAvx2)
    to_half_avx2(src, n, dst);
  else
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_half(src[i]);
}

// One query head over keys lo..lo+nc-1 of the pages K/V and its own key kx / value vx (see attend_avx).
void attend(Isa isa, const float* q, const Pages& K, const Pages& V, int64_t lo, int64_t nc, const uint16_t* kx,
            const uint16_t* vx, int64_t hd, float* out) {
  if (isa == Isa::kAvx512) {
    if (hd == 64) return attend_avx<4>(q, K, V, lo, nc, kx, vx, out);
    if (hd == 128) return attend_avx<8>(q, K, V, lo, nc, kx, vx, out);
    if (hd == 256) return attend_avx<16>(q, K, V, lo, nc, kx, vx, out);
  } else if (isa == Isa::kAvx2) {
    if (hd == 64) return attend_avx2<8>(q, K, V, lo, nc, kx, vx, out);
    if (hd == 128) return attend_avx2<16>(q, K, V, lo, nc, kx, vx, out);
  }
  attend_scalar(q, K, V, lo, nc, kx, vx, static_cast<int>(hd), out);
}

}  // namespace
