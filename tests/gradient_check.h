// A per-layer gradient checker (after Caffe's GradientChecker). It takes one layer on
// its own, sets it up for a small input, and with loss = sum(output * upstream) for
// a random upstream gradient compares the layer's analytic input gradient and each
// of its parameter gradients (weights, biases, slopes) with central differences of
// the loss, entry by entry.
//
// Every layer of the engine is piecewise linear in each input and parameter
// (convolution, inner product and pooling are linear; a rectifier is linear on each
// side of 0; max pooling is linear until the maximum changes hands). A central
// difference is then exact unless its step crosses a kink, and the rest is float32
// rounding. Hence the choice of numbers, so that the tolerance can be tight enough
// to catch a gradient 1% off:
//  - away from kinks: within each spatial plane (all of a 2-D input) the inputs are
//    a shuffled grid of distinct values 4 steps apart, none nearer than 2 steps to 0,
//    so a step of one entry crosses neither a rectifier's kink nor a max-pool tie;
//  - exact in float32: the step is 2^-7 and inputs, weights, biases and slopes are
//    small multiples of 2^-7 or 2^-5, so every product and every partial sum of a
//    convolution or inner product is representable, whatever the summation order.
//    Only non-dyadic constants (an average's 1/9, Leaky ReLU's 0.1) round, and the
//    analytic side rounds as usual;
//  - the loss, with an arbitrary upstream gradient, is summed in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "engine/layer.h"
#include "engine/params.h"
#include "engine/rng.h"

namespace prelude {

struct GradientCheckOptions {
  // |analytic - numeric| <= abs_tol + rel_tol * max(|analytic|, |numeric|). The
  // absolute part covers entries whose gradient is (near) zero, e.g. an input a max
  // pool did not pick, where float32 rounding of the analytic sum dominates.
  double rel_tol = 1e-3;
  double abs_tol = 1e-5;
  uint64_t seed = 1;
};

// The finite-difference step (see above: a power of two, so x +- eps is exact).
constexpr double kGradientCheckStep = 1.0 / 128;

struct GradientMismatch {
  std::string tensor;  // "input" or a parameter's name ("conv1.weight")
  size_t index;        // in logical (plain) order
  double analytic, numeric;
};

struct GradientCheckReport {
  std::string layer;                 // "conv1 (conv)"
  std::vector<std::string> tensors;  // what was checked: "input", then the parameters in arena order
  size_t entries = 0;
  std::vector<GradientMismatch> mismatches;
  // The largest |analytic - numeric| as a fraction of what the tolerance allows (< 1 passes).
  double worst = 0;
  GradientCheckOptions options;

  bool ok() const { return mismatches.empty() && entries > 0; }

  std::set<std::string> failing_tensors() const {
    std::set<std::string> out;
    for (const auto& m : mismatches) out.insert(m.tensor);
    return out;
  }

  // A summary line, then the first mismatches, each naming the layer and the tensor.
  std::string describe() const {
    std::ostringstream os;
    os << "layer " << layer << ": " << mismatches.size() << " of " << entries
       << " gradient entries differ from central differences (step " << kGradientCheckStep << ", tolerance "
       << options.abs_tol << " + " << options.rel_tol << " * |g|; worst at " << worst << "x the tolerance)";
    if (entries == 0) os << "; nothing was checked";
    for (size_t i = 0; i < mismatches.size() && i < 10; ++i) {
      const auto& m = mismatches[i];
      os << "\n  " << layer << " " << m.tensor << "[" << m.index << "]: analytic " << m.analytic << ", numeric "
         << m.numeric;
    }
    return os.str();
  }
};

namespace gradient_check_detail {

// The input: per group of `group` consecutive entries (a spatial plane), a shuffled
// grid of odd multiples of gap / 2.
inline std::vector<float> spaced_input(size_t n, size_t group, double gap, Rng& rng) {
  std::vector<float> v(n);
  for (size_t start = 0; start < n; start += group) {
    const size_t m = std::min(group, n - start);
    for (size_t k = 0; k < m; ++k)
      v[start + k] = static_cast<float>((static_cast<double>(k) - static_cast<double>(m / 2) + 0.5) * gap);
    for (size_t k = m; k > 1; --k) std::swap(v[start + k - 1], v[start + rng.next() % k]);
  }
  return v;
}

// Random multiples of 2^-5 in [lo, hi].
inline std::vector<float> dyadic_values(size_t n, Rng& rng, int lo_32ths, int hi_32ths) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(lo_32ths + static_cast<int>(rng.next() % (hi_32ths - lo_32ths + 1))) / 32;
  return v;
}

// For each logical (plain-order) entry of `md`, its offset in the physical buffer,
// so that a step touches one float in place whatever the layout (found by
// reordering the numbers 1..n into it; padding stays 0).
inline std::vector<size_t> physical_offsets(const dnnl::memory::desc& md) {
  const size_t n = logical_size(md);
  std::vector<float> ids(n);
  for (size_t j = 0; j < n; ++j) ids[j] = static_cast<float>(j + 1);  // exact below 2^24
  dnnl::memory mem(md, Context::get().engine);
  from_plain(ids, mem);
  const auto* phys = static_cast<const float*>(mem.get_data_handle());
  std::vector<size_t> offsets(n);
  for (size_t p = 0; p < md.get_size() / sizeof(float); ++p)
    if (phys[p] > 0) offsets[static_cast<size_t>(phys[p]) - 1] = p;
  return offsets;
}

// sum(output * upstream), in double, after a forward pass.
inline double loss(Layer& layer, const std::vector<float>& upstream) {
  layer.forward();
  Context::get().stream.wait();
  const auto y = to_plain(layer.output().data);
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) sum += static_cast<double>(y[i]) * upstream[i];
  return sum;
}

}  // namespace gradient_check_detail

// Checks `layer` (not yet set up; the checker owns it from here) on an input of
// layout `src_md`, with its input gradient bound as if it were not the first layer.
inline GradientCheckReport check_layer_gradients(std::unique_ptr<Layer> layer, const dnnl::memory::desc& src_md,
                                                 const GradientCheckOptions& opt = {}) {
  namespace d = gradient_check_detail;
  constexpr double eps = kGradientCheckStep;
  auto& ctx = Context::get();
  GradientCheckReport report;
  report.layer = layer->name() + " (" + layer->type() + ")";
  report.options = opt;

  ParamStore params;
  Blob input{dnnl::memory(src_md, ctx.engine), dnnl::memory(src_md, ctx.engine)};
  layer->setup(src_md, params);
  params.finalize();
  layer->bind(&input, /*need_input_grad=*/true);

  // Parameters at random (slopes distinct per channel, so a mixed-up channel shows),
  // the spaced input, an arbitrary upstream gradient.
  Rng rng(opt.seed);
  for (auto& p : params.params()) {
    const size_t n = logical_size(p->md);
    switch (p->kind) {
      case ParamKind::kWeight: from_plain(d::dyadic_values(n, rng, -32, 32), p->data); break;
      case ParamKind::kBias: from_plain(d::dyadic_values(n, rng, -16, 16), p->data); break;
      case ParamKind::kSlope: from_plain(d::dyadic_values(n, rng, -16, 48), p->data); break;
    }
  }
  const auto in_dims = src_md.dims();
  const size_t plane = in_dims.size() == 4 ? in_dims[2] * in_dims[3] : logical_size(src_md);
  from_plain(d::spaced_input(logical_size(src_md), plane, 4 * eps, rng), input.data);
  std::vector<float> upstream(logical_size(layer->output_desc()));
  for (auto& g : upstream) g = static_cast<float>(rng.uniform(-1, 1));
  from_plain(upstream, layer->output().diff);

  layer->forward();
  layer->backward();
  ctx.stream.wait();

  // The tensors to check, each with its analytic gradient and the memory to perturb.
  struct Tensor {
    std::string name;
    dnnl::memory values;
    std::vector<float> analytic;
  };
  std::vector<Tensor> tensors{{"input", input.data, to_plain(input.diff)}};
  for (auto& p : params.params()) tensors.push_back({p->name, p->data, to_plain(p->diff)});

  for (auto& t : tensors) {
    report.tensors.push_back(t.name);
    const auto offsets = d::physical_offsets(t.values.get_desc());
    auto* values = static_cast<float*>(t.values.get_data_handle());
    for (size_t j = 0; j < offsets.size(); ++j) {
      float& x = values[offsets[j]];
      const float orig = x;
      x = static_cast<float>(orig + eps);
      const double loss_plus = d::loss(*layer, upstream);
      x = static_cast<float>(orig - eps);
      const double loss_minus = d::loss(*layer, upstream);
      x = orig;

      const double numeric = (loss_plus - loss_minus) / (2 * eps);
      const double analytic = t.analytic[j];
      const double allowed = opt.abs_tol + opt.rel_tol * std::max(std::fabs(analytic), std::fabs(numeric));
      const double ratio = std::fabs(analytic - numeric) / allowed;  // NaN fails below
      report.worst = std::max(report.worst, ratio);
      ++report.entries;
      if (!(ratio <= 1)) report.mismatches.push_back({t.name, j, analytic, numeric});
    }
  }
  return report;
}

}  // namespace prelude
