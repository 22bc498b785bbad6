#include "engine/evaluation.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "common/errors.h"
#include "engine/model.h"
#include "engine/param_io.h"

namespace prelude {

namespace v1 = prelude::v1;

std::vector<double> log_softmax(const float* logits, int k) {
  const double m = *std::max_element(logits, logits + k);
  double sum = 0;
  for (int j = 0; j < k; ++j) sum += std::exp(logits[j] - m);
  const double lse = m + std::log(sum);
  std::vector<double> out(k);
  for (int j = 0; j < k; ++j) out[j] = logits[j] - lse;
  return out;
}

void ConfusionMatrix::add(const float* logits, const int32_t* labels, int count) {
  for (int i = 0; i < count; ++i) {
    const float* row = logits + static_cast<size_t>(i) * k;
    const int predicted = static_cast<int>(std::max_element(row, row + k) - row);
    counts[static_cast<size_t>(labels[i]) * k + predicted] += 1;
    loss_sum -= log_softmax(row, k)[labels[i]];
  }
}

int64_t ConfusionMatrix::total() const { return std::accumulate(counts.begin(), counts.end(), int64_t{0}); }

int64_t ConfusionMatrix::correct() const {
  int64_t c = 0;
  for (int i = 0; i < k; ++i) c += counts[static_cast<size_t>(i) * k + i];
  return c;
}

double ConfusionMatrix::accuracy() const {
  const int64_t n = total();
  return n ? static_cast<double>(correct()) / n : 0.0;
}

std::vector<double> ConfusionMatrix::per_class_accuracy() const {
  std::vector<double> out(k, 0.0);
  for (int i = 0; i < k; ++i) {
    int64_t row = 0;
    for (int j = 0; j < k; ++j) row += counts[static_cast<size_t>(i) * k + j];
    if (row) out[i] = static_cast<double>(counts[static_cast<size_t>(i) * k + i]) / row;
  }
  return out;
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  for (size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  loss_sum += other.loss_sum;
}

TrainedModel::TrainedModel(const v1::Checkpoint& c, const std::string& source, int batch) {
  const std::vector<v1::LayerSpec> layers(c.layers().begin(), c.layers().end());
  try {
    net_ = build_network(layers, {batch, c.io().channels(), c.io().height(), c.io().width()});
  } catch (const UserError& e) {
    throw user_error(source, e.what());
  }
  if (net_->num_classes() != c.io().num_classes())
    throw user_error(source, "its last layer gives " + std::to_string(net_->num_classes()) + " outputs for " +
                                 std::to_string(c.io().num_classes()) + " classes");
  load_params(c, source, /*with_momentum=*/false, net_->params());
}

std::vector<float> TrainedModel::logits(const float* images, int count) {
  const dims_t& d = net_->input_dims();
  const size_t per = static_cast<size_t>(d[1] * d[2] * d[3]);
  std::memcpy(net_->input_data(), images, per * count * sizeof(float));
  if (count < batch()) std::memset(net_->input_data() + per * count, 0, per * (batch() - count) * sizeof(float));
  net_->forward();
  std::vector<float> all = to_plain(net_->logits().data);
  all.resize(static_cast<size_t>(count) * num_classes());
  return all;
}

ConfusionMatrix TrainedModel::evaluate(const Dataset& data) {
  ConfusionMatrix cm(num_classes());
  const int b = batch();
  std::vector<int32_t> idx(b), labels(b);
  for (int64_t start = 0; start < data.n; start += b) {
    const int count = static_cast<int>(std::min<int64_t>(b, data.n - start));
    std::iota(idx.begin(), idx.begin() + count, static_cast<int32_t>(start));
    gather_batch(data, idx.data(), count, net_->input_data(), labels.data());
    if (count < b) {
      const size_t per = static_cast<size_t>(data.channels) * data.height * data.width;
      std::memset(net_->input_data() + per * count, 0, per * (b - count) * sizeof(float));
    }
    net_->forward();
    const std::vector<float> l = to_plain(net_->logits().data);
    cm.add(l.data(), labels.data(), count);
  }
  return cm;
}

}  // namespace prelude
