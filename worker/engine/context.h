// The oneDNN engine and stream every layer runs on, and small memory helpers.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <vector>

namespace prelude {

using dims_t = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

// One CPU engine and one in-order stream per process.
struct Context {
  dnnl::engine engine;
  dnnl::stream stream;
  static Context& get();
};

inline dnnl::memory::desc md_of(const dims_t& dims, tag t) {
  return dnnl::memory::desc(dims, dt::f32, t);
}

// The number format a network trains in (training.precision). kBf16: activations
// and their gradients in bfloat16 between the convolution, pooling and activation
// layers; master weights, weight gradients, slopes, logits and loss in float32.
enum class Precision { kF32, kBf16 };

const char* precision_name(Precision p);

// The same layout with another data type (an f32 master copy of a bf16 primitive's
// weights, say). Blocked layouts count in elements, so the layout carries over.
dnnl::memory::desc with_type(const dnnl::memory::desc& md, dt type);

// oneDNN's effective ISA ("avx512_core_bf16", "avx2", ...), and whether it has the
// AVX-512 BF16 instructions that BF16 training needs.
std::string effective_isa_name();
bool cpu_has_bf16();
// Throws a UserError on training.precision naming the missing ISA when BF16 cannot run here.
void require_bf16();

// The plain (row-major, e.g. nchw / oihw / nc) layout of the given dims.
dnnl::memory::desc plain_md(const dims_t& dims);

// Number of logical elements of a desc (product of its dims).
int64_t logical_size(const dnnl::memory::desc& md);

// Copies a memory of any layout into a plain float vector in logical order.
std::vector<float> to_plain(const dnnl::memory& mem);

// Writes plain logical-order values into a memory of any layout (zero-filling padding).
void from_plain(const std::vector<float>& values, const dnnl::memory& mem);

// Short implementation name of a primitive ("jit:avx512_core", "ref:any", ...).
std::string impl_name(const dnnl::primitive_desc_base& pd);

// Warns once on stderr when a primitive runs on a reference (slow) kernel.
void warn_if_reference(const dnnl::primitive_desc_base& pd, const std::string& what);

// In FP32 warn_if_reference; in BF16 a reference kernel is an error (a UserError on
// training.precision naming the primitive and the ISA): it would be many times slower
// than FP32, which is no reason to ask for BF16.
void check_kernel(const dnnl::primitive_desc_base& pd, const std::string& what, Precision p);

// A reorder primitive bound to its two memories, created once and run per step.
class Reorder {
 public:
  Reorder() = default;
  Reorder(const dnnl::memory& from, const dnnl::memory& to);
  void run() const;
  explicit operator bool() const { return bool(prim_); }

 private:
  dnnl::reorder prim_;
  dnnl::memory from_, to_;
};

// A memory in the layout a primitive wants, fed from (or draining into) a memory
// in the layout its neighbours use. When the layouts agree it is that memory
// itself and no reorder exists: reorders happen only where a primitive asks.
struct Edge {
  dnnl::memory mem;
  Reorder reorder;
  void run() const {
    if (reorder) reorder.run();
  }
  // `have` -> `want` before the primitive runs.
  static Edge in(const dnnl::memory& have, const dnnl::memory::desc& want);
  // The primitive writes `produced`, reordered into `dest` afterwards.
  static Edge out(const dnnl::memory& dest, const dnnl::memory::desc& produced);
};

}  // namespace prelude
