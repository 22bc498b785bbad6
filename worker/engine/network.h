// A chain of layers over one batch shape, its parameter arena and its loss.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "engine/activation_layer.h"
#include "engine/layer.h"
#include "engine/params.h"
#include "engine/softmax_xent.h"

namespace prelude {

// Standard deviation of values and gradients at each weight layer's output.
struct LayerStats {
  std::vector<std::string> layers;
  std::vector<double> activation_std;  // std of y = W x + b over the batch
  std::vector<double> gradient_std;    // std of dE/dy reaching the layer
};

class Network {
 public:
  // Builds every primitive for the input shape {N, C, H, W} (once), allocates the
  // parameter arena and binds all blobs. The last layer must produce {N, K} logits.
  // In BF16 the CPU must have AVX-512 BF16 and every primitive a JIT kernel
  // (UserErrors on training.precision otherwise); the input stays f32 (the first
  // convolution converts it).
  Network(std::vector<std::unique_ptr<Layer>> layers, const dims_t& input_dims,
          Precision precision = Precision::kF32);

  Precision precision() const { return precision_; }
  int64_t batch() const { return input_dims_[0]; }
  const dims_t& input_dims() const { return input_dims_; }
  int64_t num_classes() const { return num_classes_; }
  // The input batch, plain NCHW, batch() images.
  float* input_data() { return static_cast<float*>(input_.data.get_data_handle()); }

  // Starts with each layer's refresh_weights() (BF16: master weights into bf16,
  // once per pass, i.e. once per step after the optimizer).
  void forward();
  // Loss over the first `count` images of the batch; see SoftmaxCrossEntropy.
  LossResult loss(const int32_t* labels, int count, bool write_grad, double grad_denominator);
  void backward();
  // Backward pass that calls `done(first_offset)` after each layer with parameters,
  // once its gradients are complete: every gradient at arena offsets >= first_offset
  // is final from then on (layers register their parameters in order, backward
  // visits them in reverse). Lets gradient buckets start reducing early.
  void backward(const std::function<void(size_t first_offset)>& done);

  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  std::vector<ActivationLayer*> activations() const;
  std::vector<Layer*> weight_layers() const;
  Blob& logits() { return layers_.back()->output(); }

  // After forward + loss + backward: per weight layer, std of its output and gradient.
  LayerStats weight_layer_stats() const;

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  dims_t input_dims_;
  Precision precision_;
  int64_t num_classes_ = 0;
  Blob input_;
  ParamStore params_;
  SoftmaxCrossEntropy loss_;
  // Per layer: the number of parameters registered before it, and after it.
  std::vector<std::pair<size_t, size_t>> layer_params_;
};

// Sample standard deviation (population form) of a vector.
double stddev(const std::vector<float>& v);

}  // namespace prelude
