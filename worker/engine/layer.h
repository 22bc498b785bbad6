// The layer contract (after Caffe's): setup, forward, backward.
//
//  - setup(src_md, params): called once per input shape. Builds every oneDNN
//    primitive the layer will run (forward, backward-data, backward-weights), lets
//    them pick their preferred layouts (format_tag::any) and registers the layer's
//    parameters in that layout. Returns the layout of the output.
//  - bind(input, need_input_grad): after the parameter arena exists, binds the
//    input blob and allocates the output blob (values and gradient, same layout),
//    then calls on_bind() for whatever else the layer needs. bind() itself is not
//    virtual, so a layer cannot skip (or forget to call) the common part.
//  - refresh_weights(): at the start of each forward pass (once per step, after the
//    optimizer moved the master weights): BF16 layers convert their f32 master
//    weights into the bf16 copies both forward and backward-data read.
//  - forward(): output.data = f(input.data).
//  - backward(): from output.diff, first the parameter gradients (written, not
//    accumulated, into the arena), then input.diff unless the layer is the first.
//
// Primitives are enqueued on the shared stream; Network waits at the end of a pass.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "engine/context.h"
#include "engine/params.h"

namespace prelude {

// A tensor flowing between layers: its values and the loss gradient w.r.t. them.
struct Blob {
  dnnl::memory data;
  dnnl::memory diff;
  dnnl::memory::desc md() const { return data.get_desc(); }
};

class Layer {
 public:
  explicit Layer(std::string name) : name_(std::move(name)) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  virtual const char* type() const = 0;
  // Before setup(): the number format to build the primitives for (default FP32).
  void set_precision(Precision p) { precision_ = p; }
  Precision precision() const { return precision_; }
  virtual dnnl::memory::desc setup(const dnnl::memory::desc& src_md, ParamStore& params) = 0;
  void bind(Blob* input, bool need_input_grad);
  virtual void refresh_weights() {}
  virtual void forward() = 0;
  virtual void backward() = 0;

  // True for convolution and inner product (the layers Kaiming and Xavier initialise).
  virtual bool is_weight_layer() const { return false; }

  const std::string& name() const { return name_; }
  Blob& output() { return out_; }
  // The output layout chosen by setup().
  const dnnl::memory::desc& output_desc() const { return out_md_; }
  Blob* input() { return in_; }
  // The oneDNN kernel of each primitive the layer runs ("forward", "jit:avx512_core"),
  // as setup() and bind() created them.
  const std::vector<std::pair<std::string, std::string>>& kernels() const { return kernels_; }

 protected:
  // The layer's own binding (input-side reorders, workspaces, primitives only the
  // input gradient needs); in_, out_ and need_input_grad_ are set when it runs.
  virtual void on_bind() {}
  // warn_if_reference in FP32, an error in BF16 (see check_kernel).
  void check_kernel(const dnnl::primitive_desc_base& pd, const std::string& what) {
    prelude::check_kernel(pd, name_ + " " + what, precision_);
    kernels_.emplace_back(what, impl_name(pd));
  }
  // The data type of activations this layer produces in its precision.
  dt act_type() const { return precision_ == Precision::kBf16 ? dt::bf16 : dt::f32; }

  std::string name_;
  Blob* in_ = nullptr;
  Blob out_;
  dnnl::memory::desc out_md_;
  bool need_input_grad_ = true;
  Precision precision_ = Precision::kF32;
  std::vector<std::pair<std::string, std::string>> kernels_;
};

}  // namespace prelude
