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
//  - forward(): output.data = f(input.data).
//  - backward(): from output.diff, first the parameter gradients (written, not
//    accumulated, into the arena), then input.diff unless the layer is the first.
//
// Primitives are enqueued on the shared stream; Network waits at the end of a pass.
#pragma once

#include <string>

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
  virtual dnnl::memory::desc setup(const dnnl::memory::desc& src_md, ParamStore& params) = 0;
  void bind(Blob* input, bool need_input_grad);
  virtual void forward() = 0;
  virtual void backward() = 0;

  // True for convolution and inner product (the layers Kaiming and Xavier initialise).
  virtual bool is_weight_layer() const { return false; }

  const std::string& name() const { return name_; }
  Blob& output() { return out_; }
  // The output layout chosen by setup().
  const dnnl::memory::desc& output_desc() const { return out_md_; }
  Blob* input() { return in_; }

 protected:
  // The layer's own binding (input-side reorders, workspaces, primitives only the
  // input gradient needs); in_, out_ and need_input_grad_ are set when it runs.
  virtual void on_bind() {}

  std::string name_;
  Blob* in_ = nullptr;
  Blob out_;
  dnnl::memory::desc out_md_;
  bool need_input_grad_ = true;
};

}  // namespace prelude
