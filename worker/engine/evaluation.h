// A trained model at work on images: logits, predictions, and its evaluation on a
// labelled set (loss, accuracy, per-class accuracy, confusion matrix).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/dataset.h"
#include "engine/network.h"
#include "prelude/v1/checkpoint.pb.h"

namespace prelude {

// Counts of (true class, predicted class) pairs, and the loss over them.
struct ConfusionMatrix {
  explicit ConfusionMatrix(int classes = 0) : k(classes), counts(static_cast<size_t>(classes) * classes, 0) {}
  int k;
  std::vector<int64_t> counts;  // row = true class, column = predicted class
  double loss_sum = 0;

  // Rows of `logits` ({count, k}, row-major): the arg-max is the prediction.
  void add(const float* logits, const int32_t* labels, int count);
  int64_t total() const;
  int64_t correct() const;
  double accuracy() const;
  // Correct / total for each true class (0 for a class with no image).
  std::vector<double> per_class_accuracy() const;
  // Sums another rank's counts into this one (same k).
  void merge(const ConfusionMatrix& other);
};

// A network rebuilt from a checkpoint for inference on batches of up to `batch`
// images. Parameters that do not fit its layers are a UserError naming `source`.
class TrainedModel {
 public:
  TrainedModel(const prelude::v1::Checkpoint& checkpoint, const std::string& source, int batch);

  int batch() const { return static_cast<int>(net_->batch()); }
  int num_classes() const { return static_cast<int>(net_->num_classes()); }
  // Logits ({count, classes}, row-major) of `count` <= batch() normalised images.
  std::vector<float> logits(const float* images, int count);
  // The whole data set: loss, accuracy, per class and the confusion matrix.
  ConfusionMatrix evaluate(const Dataset& data);

 private:
  std::unique_ptr<Network> net_;
};

// Log-probabilities of one row of logits (numerically stable log-softmax).
std::vector<double> log_softmax(const float* logits, int k);

}  // namespace prelude
