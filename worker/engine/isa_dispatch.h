// Kernels compiled for each x86 ISA we know (AVX-512, AVX2, the x86-64 baseline),
// the widest this CPU runs chosen at startup: the binary stays portable (no -march)
// and still vectorises on the machine it lands on.
//
// A kernel file writes its loop once as an always_inline body, wraps it in one
// function per ISA (`__attribute__((target("avx512f")))`, `target("avx2")`, none),
// and hands the three to isa_variants(). Users call the front of the list; tests
// compare every variant against a scalar reference. Used by sgd.cc and
// bf16_convert.cc.
#pragma once

#include <vector>

namespace prelude {

template <typename Fn>
struct IsaVariant {
  const char* isa;  // "avx512f", "avx2" or "baseline"
  Fn fn;
};

// The variants this CPU can run, widest first; the baseline is always last.
template <typename Fn>
std::vector<IsaVariant<Fn>> isa_variants(Fn avx512f, Fn avx2, Fn baseline) {
  std::vector<IsaVariant<Fn>> v;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) v.push_back({"avx512f", avx512f});
  if (__builtin_cpu_supports("avx2")) v.push_back({"avx2", avx2});
  v.push_back({"baseline", baseline});
  return v;
}

}  // namespace prelude
