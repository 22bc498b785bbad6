#include "engine/network.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "common/errors.h"
#include "engine/memory_budget.h"

namespace prelude {

Network::Network(std::vector<std::unique_ptr<Layer>> layers, const dims_t& input_dims, Precision precision)
    : layers_(std::move(layers)), input_dims_(input_dims), precision_(precision) {
  if (layers_.empty()) throw std::logic_error("Network needs at least one layer");
  if (precision_ == Precision::kBf16) require_bf16();  // before any primitive, naming the ISA
  auto& eng = Context::get().engine;
  const auto in_md = md_of(input_dims_, tag::nchw);
  input_.data = dnnl::memory(in_md, eng);
  input_.diff = dnnl::memory(in_md, eng);  // written only if the first layer is an activation

  dnnl::memory::desc md = in_md;
  for (auto& l : layers_) {
    const size_t before = params_.params().size();
    l->set_precision(precision_);
    try {
      md = l->setup(md, params_);
    } catch (const dnnl::error& e) {
      if (precision_ == Precision::kF32) throw;
      // A bf16 primitive oneDNN cannot create here (no kernel at all): say which.
      throw user_error("training.precision", "BF16 " + l->name() + " cannot run on this CPU (oneDNN runs it as " +
                                                 effective_isa_name() + ": " + e.what() + "); use FP32");
    }
    layer_params_.emplace_back(before, params_.params().size());
  }
  const auto out = md.dims();
  if (out.size() != 2)
    throw UserError("model: the last layer must be fully connected (it gives the class scores)");
  num_classes_ = out[1];

  // Refuse a model that cannot fit before allocating anything: values and gradients
  // of every layer's output plus three copies of the parameters.
  double bytes = 3.0 * params_.total_floats() * sizeof(float);
  for (auto& l : layers_) bytes += 2.0 * l->output_desc().get_size();
  // Against what is left of this rank's share of the host (or of its cgroup's limit)
  // once the data it holds is counted: the ranks on a host each load the data and
  // build a network, and the OOM killer would end them all without a word.
  const MemoryBudget budget = this_rank_memory_budget();
  const uint64_t held = resident_bytes();
  const double left = static_cast<double>(budget.bytes - std::min(budget.bytes, held));
  if (bytes > 0.8 * left)
    throw UserError("batch " + std::to_string(input_dims_[0]) + " needs about " +
                    std::to_string(static_cast<long long>(std::min(bytes / (1 << 20), 9e18))) + " MiB" +
                    " for activations and parameters, more than 80% of the " +
                    format_bytes(static_cast<uint64_t>(left)) + " this rank has left (its memory budget is " +
                    budget.describe() + ", and it holds " + format_bytes(held) +
                    " already); use a smaller training.batchSize or model, or fewer ranks on this host");
  params_.finalize();

  Blob* prev = &input_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->bind(prev, /*need_input_grad=*/i > 0);
    prev = &layers_[i]->output();
  }
  loss_.setup(md);
  loss_.bind(prev);
}

void Network::forward() {
  for (auto& l : layers_) l->refresh_weights();
  for (auto& l : layers_) l->forward();
  Context::get().stream.wait();
}

LossResult Network::loss(const int32_t* labels, int count, bool write_grad, double grad_denominator) {
  return loss_.compute(labels, count, write_grad, grad_denominator);
}

void Network::backward() {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) (*it)->backward();
  Context::get().stream.wait();
}

void Network::backward(const std::function<void(size_t)>& done) {
  auto& stream = Context::get().stream;
  for (size_t i = layers_.size(); i-- > 0;) {
    layers_[i]->backward();
    const auto [begin, end] = layer_params_[i];
    if (begin == end) continue;
    stream.wait();
    done(params_.params()[begin]->offset);
  }
  stream.wait();
}

std::vector<ActivationLayer*> Network::activations() const {
  std::vector<ActivationLayer*> out;
  for (auto& l : layers_)
    if (auto* a = dynamic_cast<ActivationLayer*>(l.get())) out.push_back(a);
  return out;
}

std::vector<Layer*> Network::weight_layers() const {
  std::vector<Layer*> out;
  for (auto& l : layers_)
    if (l->is_weight_layer()) out.push_back(l.get());
  return out;
}

double stddev(const std::vector<float>& v) {
  if (v.empty()) return 0;
  double sum = 0, sq = 0;
  for (float x : v) sum += x;
  const double mean = sum / v.size();
  for (float x : v) sq += (x - mean) * (x - mean);
  return std::sqrt(sq / v.size());
}

LayerStats Network::weight_layer_stats() const {
  LayerStats s;
  for (auto* l : weight_layers()) {
    s.layers.push_back(l->name());
    s.activation_std.push_back(stddev(to_plain(l->output().data)));
    s.gradient_std.push_back(stddev(to_plain(l->output().diff)));
  }
  return s;
}

}  // namespace prelude
