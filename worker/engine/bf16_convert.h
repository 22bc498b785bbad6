// float32 <-> bfloat16 for gradients reduced across ranks in bf16 (as Horovod's fp16
// compression): bf16 is float32's upper 16 bits (sign, 8-bit exponent, 7 stored
// mantissa bits), so it keeps float32's range and has 8 bits of precision: each
// rounding is off by at most 2^-8 relative (half an ulp: 2^-9 for normal values).
//
// Rounding is to nearest, ties to even, done on the integer bits: finite values too
// large round to +-inf, denormals round like any other value (not flushed), and a NaN
// stays a NaN (quiet, sign kept) even when its payload lies in the discarded bits.
// The same integer arithmetic in every ISA variant (engine/isa_dispatch.h), not the
// CPU's VCVTNEPS2BF16, which flushes denormals: ranks on hosts with different CPUs
// must produce the same bits, or their weights drift apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/isa_dispatch.h"

namespace prelude {

// The scalar reference of one conversion (the kernels do this per element).
inline uint16_t f32_to_bf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((b >> 16) | 0x0040u);  // NaN: quiet
  // Adding 0x7FFF rounds up past half an ulp; the kept lowest bit breaks ties to even.
  return static_cast<uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  const uint32_t b = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
inline uint16_t bf16_add_reference(uint16_t a, uint16_t b) {
  const float sum = bf16_to_f32(a) + bf16_to_f32(b);
  return sum != sum ? uint16_t{0x7FC0} : f32_to_bf16(sum);
}

// The compiled forms, one set per ISA:
//   to_bf16:  out[i] = f32_to_bf16(in[i])
//   to_f32:   out[i] = bf16_to_f32(in[i]) * scale
//   add:      inout[i] = f32_to_bf16(bf16_to_f32(in[i]) + bf16_to_f32(inout[i]))  (an MPI sum),
//             a NaN sum as the canonical NaN 0x7FC0, so that the operands' order
//             never shows in the bits (bf16_add_reference below)
struct Bf16Kernels {
  void (*to_bf16)(const float* in, uint16_t* out, size_t n);
  void (*to_f32)(const uint16_t* in, float* out, size_t n, float scale);
  void (*add)(const uint16_t* in, uint16_t* inout, size_t n);
};
// The variants this CPU can run, widest first; the functions below use the first.
// For tests (each must match the scalar reference bit for bit) and benchmarks.
const std::vector<IsaVariant<Bf16Kernels>>& bf16_kernels();

inline void f32_to_bf16(const float* in, uint16_t* out, size_t n) { bf16_kernels().front().fn.to_bf16(in, out, n); }
inline void bf16_to_f32(const uint16_t* in, float* out, size_t n, float scale) {
  bf16_kernels().front().fn.to_f32(in, out, n, scale);
}
inline void bf16_add(const uint16_t* in, uint16_t* inout, size_t n) { bf16_kernels().front().fn.add(in, inout, n); }

}  // namespace prelude
