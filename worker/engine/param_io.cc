#include "engine/param_io.h"

#include "common/errors.h"
#include "common/text.h"

namespace prelude {

namespace v1 = prelude::v1;

namespace {

v1::Tensor::Kind tensor_kind(ParamKind k) {
  switch (k) {
    case ParamKind::kWeight: return v1::Tensor::WEIGHT;
    case ParamKind::kBias: return v1::Tensor::BIAS;
    case ParamKind::kSlope: return v1::Tensor::SLOPE;
  }
  return v1::Tensor::KIND_UNSPECIFIED;
}

// The checkpoint's shape of a parameter: OIHW for convolution weights; OI for fully
// connected weights (oneDNN's {O, C, H, W} after a convolution, flattened in NCHW
// order); slopes and biases as one vector.
std::vector<int64_t> plain_dims(const Param& p) {
  const dims_t d = p.md.dims();
  const int64_t n = logical_size(p.md);
  if (p.kind != ParamKind::kWeight) return {n};
  if (p.name.rfind("fc", 0) == 0) return {d[0], n / d[0]};
  return std::vector<int64_t>(d.begin(), d.end());
}

dnnl::memory momentum_memory(const Param& p) {
  return dnnl::memory(p.md, Context::get().engine, p.momentum_ptr);
}

}  // namespace

void save_params(const ParamStore& params, bool with_momentum, v1::Checkpoint* out) {
  for (const auto& p : params.params()) {
    v1::Tensor* t = out->add_params();
    t->set_name(p->name);
    t->set_kind(tensor_kind(p->kind));
    for (int64_t d : plain_dims(*p)) t->add_dims(d);
    const std::vector<float> values = to_plain(p->data);
    t->mutable_values()->Add(values.begin(), values.end());
    if (with_momentum) {
      const std::vector<float> m = to_plain(momentum_memory(*p));
      t->mutable_momentum()->Add(m.begin(), m.end());
    }
  }
}

void load_params(const v1::Checkpoint& checkpoint, const std::string& source, bool with_momentum,
                 ParamStore& params) {
  const auto& ps = params.params();
  if (checkpoint.params_size() != static_cast<int>(ps.size()))
    throw user_error(source, "holds " + std::to_string(checkpoint.params_size()) + " parameters, the model has " +
                                 std::to_string(ps.size()) + ": it is another model");
  for (size_t i = 0; i < ps.size(); ++i) {
    const Param& p = *ps[i];
    const v1::Tensor& t = checkpoint.params(static_cast<int>(i));
    const std::vector<int64_t> want = plain_dims(p), have(t.dims().begin(), t.dims().end());
    if (t.name() != p.name || have != want) {
      auto shape = [](const std::vector<int64_t>& d) {
        std::string s;
        for (int64_t x : d) s += (s.empty() ? "" : "x") + std::to_string(x);
        return s;
      };
      throw user_error(source, "parameter " + std::to_string(i) + " is " + echoed(t.name()) + " " + shape(have) +
                                   ", the model's is '" + p.name + "' " + shape(want) + ": it is another model");
    }
    if (with_momentum && t.momentum_size() != t.values_size())
      throw user_error(source, "parameter " + echoed(t.name()) +
                                   " has no optimizer state (an exported model cannot resume)");
    from_plain(std::vector<float>(t.values().begin(), t.values().end()), p.data);
    if (with_momentum) from_plain(std::vector<float>(t.momentum().begin(), t.momentum().end()), momentum_memory(p));
  }
}

}  // namespace prelude
