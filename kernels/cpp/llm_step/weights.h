// Weight packing: the aligned buffer, fp16 scale helpers, the packed tile layout (Packed) built once
// from GGUF's Q4_1 / Q8_0 arrays, and the dequantized row lookup the embedding uses.
//
// Internal to kernels/cpp/llm_step.cpp, the one translation unit that includes it: everything is
// in an anonymous namespace (internal linkage, as when it was all one file), so nothing here is
// an interface for other code, and inlining and code generation are those of the single file.

#pragma once

#include "common.h"

namespace {

// ----------------------------------------------------------------------------------------------
// Aligned buffer and fp16 helpers

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

}  // namespace
