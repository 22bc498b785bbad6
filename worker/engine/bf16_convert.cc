#include "engine/bf16_convert.h"

namespace prelude {

namespace {

// The per-element arithmetic, written once on the integer bits (branch-free, so it
// vectorises); each wrapper below inlines it under its own target.
__attribute__((always_inline)) inline uint32_t round_bits(uint32_t b) {
  const uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (b >> 16) | 0x0040u;
  return (b & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded;
}
__attribute__((always_inline)) inline uint32_t float_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
__attribute__((always_inline)) inline float bits_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

__attribute__((always_inline)) inline void to_bf16_body(const float* __restrict in, uint16_t* __restrict out,
                                                        size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint16_t>(round_bits(float_bits(in[i])));
}
__attribute__((always_inline)) inline void to_f32_body(const uint16_t* __restrict in, float* __restrict out,
                                                       size_t n, float scale) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = bits_float(static_cast<uint32_t>(in[i]) << 16) * scale;
}
__attribute__((always_inline)) inline void add_body(const uint16_t* __restrict in, uint16_t* __restrict inout,
                                                    size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    const float sum = bits_float(static_cast<uint32_t>(in[i]) << 16) + bits_float(static_cast<uint32_t>(inout[i]) << 16);
    // A NaN sum becomes the one canonical NaN: which payload x86 keeps from two NaNs
    // depends on the operands' order, which MPI may swap between ranks.
    const uint32_t bits = float_bits(sum);
    inout[i] = static_cast<uint16_t>((bits & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : round_bits(bits));
  }
}

#define PRELUDE_BF16_KERNELS(suffix, attr)                                                                      \
  attr void to_bf16_##suffix(const float* in, uint16_t* out, size_t n) { to_bf16_body(in, out, n); }          \
  attr void to_f32_##suffix(const uint16_t* in, float* out, size_t n, float scale) {                          \
    to_f32_body(in, out, n, scale);                                                                           \
  }                                                                                                           \
  attr void add_##suffix(const uint16_t* in, uint16_t* inout, size_t n) { add_body(in, inout, n); }           \
  constexpr Bf16Kernels kernels_##suffix = {to_bf16_##suffix, to_f32_##suffix, add_##suffix};

PRELUDE_BF16_KERNELS(avx512f, __attribute__((target("avx512f"))))
PRELUDE_BF16_KERNELS(avx2, __attribute__((target("avx2"))))
PRELUDE_BF16_KERNELS(baseline, )
#undef PRELUDE_BF16_KERNELS

}  // namespace

const std::vector<IsaVariant<Bf16Kernels>>& bf16_kernels() {
  static const std::vector<IsaVariant<Bf16Kernels>> k =
      isa_variants(kernels_avx512f, kernels_avx2, kernels_baseline);
  return k;
}

}  // namespace prelude
