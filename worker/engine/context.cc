#include "engine/context.h"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>

#include "common/errors.h"

namespace prelude {

Context& Context::get() {
  static Context ctx = [] {
    Context c;
    c.engine = dnnl::engine(dnnl::engine::kind::cpu, 0);
    c.stream = dnnl::stream(c.engine);
    return c;
  }();
  return ctx;
}

dnnl::memory::desc plain_md(const dims_t& dims) {
  switch (dims.size()) {
    case 1: return md_of(dims, tag::a);
    case 2: return md_of(dims, tag::ab);
    case 3: return md_of(dims, tag::abc);
    case 4: return md_of(dims, tag::abcd);
    case 5: return md_of(dims, tag::abcde);
    default: throw std::logic_error("plain_md: unsupported rank");
  }
}

int64_t logical_size(const dnnl::memory::desc& md) {
  int64_t n = 1;
  for (auto d : md.dims()) n *= d;
  return n;
}

std::vector<float> to_plain(const dnnl::memory& mem) {
  auto& ctx = Context::get();
  const auto md = mem.get_desc();
  std::vector<float> out(logical_size(md));
  const auto pmd = plain_md(md.dims());
  if (pmd == md) {
    std::memcpy(out.data(), mem.get_data_handle(), out.size() * sizeof(float));
    return out;
  }
  dnnl::memory dst(pmd, ctx.engine, out.data());
  dnnl::reorder(mem, dst).execute(ctx.stream, const_cast<dnnl::memory&>(mem), dst);
  ctx.stream.wait();
  return out;
}

void from_plain(const std::vector<float>& values, const dnnl::memory& mem) {
  auto& ctx = Context::get();
  const auto md = mem.get_desc();
  if (static_cast<int64_t>(values.size()) != logical_size(md))
    throw std::logic_error("from_plain: size mismatch");
  const auto pmd = plain_md(md.dims());
  if (pmd == md) {
    std::memcpy(mem.get_data_handle(), values.data(), values.size() * sizeof(float));
    return;
  }
  dnnl::memory src(pmd, ctx.engine, const_cast<float*>(values.data()));
  dnnl::reorder(src, mem).execute(ctx.stream, src, const_cast<dnnl::memory&>(mem));
  ctx.stream.wait();
}

std::string impl_name(const dnnl::primitive_desc_base& pd) {
  return pd.impl_info_str();
}

void warn_if_reference(const dnnl::primitive_desc_base& pd, const std::string& what) {
  static std::mutex mu;
  static std::set<std::string> seen;
  const std::string impl = impl_name(pd);
  if (impl.rfind("ref", 0) != 0) return;
  std::lock_guard<std::mutex> lock(mu);
  if (seen.insert(what + impl).second)
    std::fprintf(stderr, "prelude: warning: %s runs on oneDNN's reference kernel (%s): slow\n",
                 what.c_str(), impl.c_str());
}

const char* precision_name(Precision p) { return p == Precision::kBf16 ? "BF16" : "FP32"; }

dnnl::memory::desc with_type(const dnnl::memory::desc& md, dt type) {
  dnnl_memory_desc_t d = md.data;
  d.data_type = static_cast<dnnl_data_type_t>(type);
  return dnnl::memory::desc(d);
}

std::string effective_isa_name() {
  using dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case cpu_isa::sse41: return "sse41";
    case cpu_isa::avx: return "avx";
    case cpu_isa::avx2: return "avx2";
    case cpu_isa::avx2_vnni: return "avx2_vnni";
    case cpu_isa::avx512_mic: return "avx512_mic";
    case cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case cpu_isa::avx512_core: return "avx512_core";
    case cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
  }
}

bool cpu_has_bf16() {
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

void require_bf16() {
  if (cpu_has_bf16()) return;
  throw user_error("training.precision",
                   "BF16 needs a CPU with AVX-512 BF16 instructions (avx512_bf16, oneDNN's avx512_core_bf16), which "
                   "this one lacks: oneDNN runs it as " + effective_isa_name() +
                   " (ONEDNN_MAX_CPU_ISA may cap it); use FP32 here");
}

void check_kernel(const dnnl::primitive_desc_base& pd, const std::string& what, Precision p) {
  if (p == Precision::kF32) return warn_if_reference(pd, what);
  const std::string impl = impl_name(pd);
  if (impl.rfind("ref", 0) == 0)
    throw user_error("training.precision", "BF16 " + what + " has only oneDNN's reference kernel (" + impl +
                                               ") on this CPU (" + effective_isa_name() + "); use FP32");
}

Reorder::Reorder(const dnnl::memory& from, const dnnl::memory& to)
    : prim_(from, to), from_(from), to_(to) {}

void Reorder::run() const {
  auto& ctx = Context::get();
  prim_.execute(ctx.stream, const_cast<dnnl::memory&>(from_), const_cast<dnnl::memory&>(to_));
}

Edge Edge::in(const dnnl::memory& have, const dnnl::memory::desc& want) {
  if (have.get_desc() == want) return {have, {}};
  dnnl::memory m(want, Context::get().engine);
  return {m, Reorder(have, m)};
}

Edge Edge::out(const dnnl::memory& dest, const dnnl::memory::desc& produced) {
  if (dest.get_desc() == produced) return {dest, {}};
  dnnl::memory m(produced, Context::get().engine);
  return {m, Reorder(m, dest)};
}

}  // namespace prelude
