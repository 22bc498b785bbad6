// Where a training run stands between two steps (TrainingState), and its form in a
// checkpoint (prelude.v1.TrainingProgress): the two convert exactly, so a run
// restored from a checkpoint continues as the run that wrote it.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "engine/softmax_xent.h"
#include "prelude/v1/checkpoint.pb.h"

namespace prelude {

// Loss and accuracy sums over images (every rank's, once reduced).
struct Accum {
  double loss_sum = 0;
  int64_t correct = 0, count = 0;
  void add(const LossResult& r) {
    loss_sum += r.loss_sum;
    correct += r.correct;
    count += r.count;
  }
  double loss() const { return count ? loss_sum / count : 0; }
  double accuracy() const { return count ? static_cast<double>(correct) / count : 0; }
};

// The stall check's windows (training.stallWindowSteps).
struct StallWatch {
  double sum = 0;                                              // losses of the window in progress
  double best_mean = std::numeric_limits<double>::infinity();  // the best finished window's mean loss
  int64_t best_end = 0;                                        // and its last step
};

// Where a run stands between two steps: all that the training loop carries from one
// step to the next, apart from the parameters and their momentum (in the network's
// ParamStore). Nothing else changes while training: the batches of an epoch come from
// epoch_permutation(n, seed, epoch), a pure function, and the learning rate from the
// step. So a run given a copy of this state, and those parameters and momentum,
// continues exactly as the run that reached it; a checkpoint saves these plain fields.
struct TrainingState {
  int64_t step = 0;      // optimizer steps taken: the next step's 0-based index
  int epoch = 0;         // the epoch in progress (or next), 0-based
  int64_t position = 0;  // batches of `epoch` taken; > 0 until the epoch is reported
  bool stopped = false;  // the first rank was asked to stop: no more steps
  Accum window;          // the steps since the last step event
  Accum epoch_sums;      // the steps of `epoch` so far
  Accum last_epoch;      // the last reported epoch: its steps,
  Accum last_test;       // and its test set (count 0: not evaluated)
  std::vector<int64_t> last_confusion;  // and its confusion matrix (row = true class)
  StallWatch stall;
  // Training time: only the throughputs (images per second) depend on it.
  double window_seconds = 0;  // of the steps in `window`
  double train_seconds = 0;   // of every step after the warm-up
};

// The state in a checkpoint; `total_steps` is the run's, for the record.
prelude::v1::TrainingProgress to_progress(const TrainingState& state, int64_t total_steps);
TrainingState from_progress(const prelude::v1::TrainingProgress& progress);

}  // namespace prelude
