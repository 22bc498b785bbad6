#include "artifacts/onnx_export.h"

#include <onnx/onnx_pb.h>

#include <cstdio>

#include "common/errors.h"
#include "common/text.h"
#include "spec/job_spec.h"

namespace prelude {

namespace {

constexpr int kOpset = 13;
// No parameter has more elements (decode_checkpoint's bound); nor, then, a layer's input.
constexpr int64_t kMaxElements = int64_t{1} << 40;

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

class GraphBuilder {
 public:
  GraphBuilder(const v1::Checkpoint& c, const std::string& source, onnx::GraphProto* g)
      : c_(c), source_(source), g_(g) {}

  void build() {
    const auto& io = c_.io();
    add_value_info(g_->add_input(), "pixels", {-1, io.channels(), io.height(), io.width()});
    shape_ = {io.channels(), io.height(), io.width()};
    std::string x = "pixels";
    x = binary("Sub", x, scalar("mean", io.mean()), "normalised_shifted");
    x = binary("Div", x, scalar("std", io.std()), "normalised");
    for (int i = 0; i < c_.layers_size(); ++i) x = layer(c_.layers(i), i, x);
    if (next_ != c_.params_size())
      fail(std::to_string(c_.params_size() - next_) + " parameters are left over after the last layer");
    node("Identity", {x}, "logits");
    add_value_info(g_->add_output(), "logits", {-1, c_.io().num_classes()});
  }

 private:
  std::string layer(const v1::LayerSpec& l, int i, const std::string& x) {
    const std::string at = "layer " + std::to_string(i);
    // decode_checkpoint checks this too; a checkpoint built in code reaches here unchecked.
    try {
      validate_layer(l, "");
    } catch (const UserError& e) {
      fail(at + ": " + e.what());
    }
    switch (l.layer_case()) {
      case v1::LayerSpec::kConv: {
        const auto& s = l.conv();
        if (shape_.size() != 3) fail(at + ": a convolution after a fully connected layer");
        check_fits(at, int64_t{s.kernel()} - 2 * int64_t{s.padding()});
        const v1::Tensor& w = take(v1::Tensor::WEIGHT, at, {s.out_channels(), shape_[0], s.kernel(), s.kernel()});
        const v1::Tensor& b = take(v1::Tensor::BIAS, at, {s.out_channels()});
        onnx::NodeProto* n = node("Conv", {x, init(w), init(b)}, w.name().substr(0, w.name().rfind('.')));
        ints(n, "kernel_shape", {s.kernel(), s.kernel()});
        ints(n, "pads", {s.padding(), s.padding(), s.padding(), s.padding()});
        ints(n, "strides", {s.stride(), s.stride()});
        const int64_t k = s.kernel(), p = s.padding(), st = s.stride();
        shape_ = {s.out_channels(), (shape_[1] + 2 * p - k) / st + 1, (shape_[2] + 2 * p - k) / st + 1};
        return n->output(0);
      }
      case v1::LayerSpec::kFc: {
        std::string in = x;
        int64_t features = 1;
        for (int64_t d : shape_) {
          if (d > kMaxElements / features) fail(at + ": more than 2^40 input features");
          features *= d;
        }
        if (shape_.size() != 1) {
          onnx::NodeProto* f = node("Flatten", {x}, "flatten" + std::to_string(++flattens_));
          ints_attr(f, "axis", 1);
          in = f->output(0);
        }
        const v1::Tensor& w = take(v1::Tensor::WEIGHT, at, {l.fc().out_features(), features});
        const v1::Tensor& b = take(v1::Tensor::BIAS, at, {l.fc().out_features()});
        onnx::NodeProto* n = node("Gemm", {in, init(w), init(b)}, w.name().substr(0, w.name().rfind('.')));
        ints_attr(n, "transB", 1);
        shape_ = {l.fc().out_features()};
        return n->output(0);
      }
      case v1::LayerSpec::kPool: {
        const auto& s = l.pool();
        if (shape_.size() != 3) fail(at + ": pooling after a fully connected layer");
        const std::string name = "pool" + std::to_string(++pools_);
        if (s.kind() == v1::PoolLayerSpec::GLOBAL_AVG) {
          shape_ = {shape_[0], 1, 1};
          return node("GlobalAveragePool", {x}, name)->output(0);
        }
        onnx::NodeProto* n = node(s.kind() == v1::PoolLayerSpec::AVG ? "AveragePool" : "MaxPool", {x}, name);
        ints(n, "kernel_shape", {s.kernel(), s.kernel()});
        ints(n, "strides", {s.stride(), s.stride()});
        check_fits(at, s.kernel());
        shape_ = {shape_[0], (shape_[1] - s.kernel()) / s.stride() + 1, (shape_[2] - s.kernel()) / s.stride() + 1};
        return n->output(0);
      }
      case v1::LayerSpec::kActivation: {
        const auto& a = l.activation();
        const std::string name = "act" + std::to_string(++acts_);
        switch (a.kind()) {
          case v1::ActivationSpec::RELU:
            return node("Relu", {x}, name)->output(0);
          case v1::ActivationSpec::LEAKY_RELU: {
            onnx::NodeProto* n = node("LeakyRelu", {x}, name);
            auto* attr = n->add_attribute();
            attr->set_name("alpha");
            attr->set_type(onnx::AttributeProto::FLOAT);
            attr->set_f(static_cast<float>(a.alpha_init()));
            return n->output(0);
          }
          case v1::ActivationSpec::PRELU_SHARED:
          case v1::ActivationSpec::PRELU_CHANNELWISE: {
            const bool shared = a.kind() == v1::ActivationSpec::PRELU_SHARED;
            const v1::Tensor& t = take(v1::Tensor::SLOPE, at, {shared ? 1 : shape_[0]});
            // PRelu broadcasts the slope from the right: {C,1,1} lines up with N x C x H x W.
            std::vector<int64_t> dims{t.dims(0)};
            if (shape_.size() == 3 && !shared) dims = {t.dims(0), 1, 1};
            return node("PRelu", {x, init(t, dims)}, name)->output(0);
          }
          default:
            fail(at + ": activation without a kind");
        }
      }
      default:
        fail(at + ": empty layer");
    }
  }

  // A window of `span` (a kernel less the padding on both sides) must fit the input.
  void check_fits(const std::string& at, int64_t span) const {
    if (shape_[1] < span || shape_[2] < span)
      fail(at + ": an input of " + std::to_string(shape_[1]) + "x" + std::to_string(shape_[2]) +
           " is too small for it");
  }

  // The next parameter, which must be of `kind` and shape `dims`.
  const v1::Tensor& take(v1::Tensor::Kind kind, const std::string& at, const std::vector<int64_t>& dims) {
    if (next_ >= c_.params_size()) fail(at + ": its parameters are missing");
    const v1::Tensor& t = c_.params(next_++);
    const std::vector<int64_t> have(t.dims().begin(), t.dims().end());
    if (t.kind() != kind || have != dims)
      fail(at + ": parameter " + echoed(t.name()) + " does not fit the layer (kind or shape)");
    return t;
  }

  std::string init(const v1::Tensor& t, std::vector<int64_t> dims = {}) {
    if (dims.empty()) dims.assign(t.dims().begin(), t.dims().end());
    onnx::TensorProto* p = g_->add_initializer();
    p->set_name(t.name());
    p->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) p->add_dims(d);
    p->set_raw_data(std::string(reinterpret_cast<const char*>(t.values().data()), t.values_size() * sizeof(float)));
    return t.name();
  }

  std::string scalar(const std::string& name, double v) {
    onnx::TensorProto* p = g_->add_initializer();
    p->set_name(name);
    p->set_data_type(onnx::TensorProto::FLOAT);
    p->add_float_data(static_cast<float>(v));
    return name;
  }

  std::string binary(const char* op, const std::string& a, const std::string& b, const std::string& name) {
    return node(op, {a, b}, name)->output(0);
  }

  onnx::NodeProto* node(const char* op, const std::vector<std::string>& inputs, const std::string& name) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(name == "logits" ? name : name + ":out");
    return n;
  }

  static void ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void ints_attr(onnx::NodeProto* n, const char* name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }

  static void add_value_info(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) {
      auto* dim = t->mutable_shape()->add_dim();
      if (d < 0)
        dim->set_dim_param("N");
      else
        dim->set_dim_value(d);
    }
  }

  [[noreturn]] void fail(const std::string& why) const { throw user_error(source_, "cannot export to ONNX: " + why); }

  const v1::Checkpoint& c_;
  const std::string& source_;
  onnx::GraphProto* g_;
  std::vector<int64_t> shape_;  // C, H, W or features
  int next_ = 0, pools_ = 0, acts_ = 0, flattens_ = 0;
};

void meta(onnx::ModelProto* m, const std::string& key, const std::string& value) {
  auto* p = m->add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

}  // namespace

std::string export_onnx(const v1::Checkpoint& checkpoint, const std::string& source) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  m.set_producer_name("prelude");
  m.set_producer_version("1");
  m.set_model_version(checkpoint.progress().step());
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name(checkpoint.spec().name().empty() ? "prelude" : checkpoint.spec().name());
  GraphBuilder(checkpoint, source, g).build();
  const auto& io = checkpoint.io();
  meta(&m, "input", "pixels: float32 N x C x H x W scaled to [0, 1]; the graph normalises them itself");
  meta(&m, "normalization", "applied in the graph: (pixels - mean) / std");
  meta(&m, "mean", number(io.mean()));
  meta(&m, "std", number(io.std()));
  meta(&m, "output", "logits: N x classes (apply softmax for probabilities)");
  std::string names;
  for (const auto& n : io.class_names()) names += (names.empty() ? "" : ",") + n;
  if (!names.empty()) meta(&m, "class_names", names);
  if (!checkpoint.job_id().empty()) meta(&m, "prelude_job", checkpoint.job_id());
  meta(&m, "prelude_step", std::to_string(checkpoint.progress().step()));
  std::string out;
  if (!m.SerializeToString(&out)) throw std::runtime_error("cannot serialize the ONNX model");
  return out;
}

}  // namespace prelude
