// All learnable parameters of a network, in one flat arena.
//
// Every parameter (weights, biases, PReLU slopes) is a view into three contiguous
// float buffers: values, gradients and momentum. Parameters are laid out in the
// order the layers registered them, which is the same on every process, so a whole
// network's gradients can be reduced with one collective over one buffer (the
// fusion buffer of Horovod, with no copy) and its values broadcast or checksummed
// the same way. A parameter's memory desc is the layout its primitive prefers
// (e.g. OIhw16i16o for a convolution); the optimiser is elementwise, so it does not
// care, and initialisers write through a reorder from the plain layout.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/context.h"

namespace prelude {

enum class ParamKind { kWeight, kBias, kSlope };

struct Param {
  std::string name;          // e.g. "conv1.weight"
  ParamKind kind;
  dnnl::memory::desc md;     // physical layout in the arena
  size_t offset = 0;         // in floats, into the arena
  size_t size = 0;           // in floats, physical (md.get_size() / 4)
  // For initialisers (weights only): fan-in / fan-out (k*k*c) and the negative
  // slope of the rectifier this layer feeds, used by Kaiming's (1 + a^2).
  int64_t fan_in = 0, fan_out = 0;
  double rectifier_slope = 0;
  double init_value = 0;     // biases and slopes start here
  // Views into the arena; valid after ParamStore::finalize().
  dnnl::memory data, diff;
  float* value_ptr = nullptr;
  float* grad_ptr = nullptr;
  float* momentum_ptr = nullptr;
};

class ParamStore {
 public:
  // Registers a parameter; the returned pointer stays valid for the store's life.
  Param* add(const std::string& name, ParamKind kind, const dnnl::memory::desc& md);
  // Allocates the arena (zero-filled) and binds every parameter's memories.
  void finalize();
  bool finalized() const { return finalized_; }

  const std::vector<std::unique_ptr<Param>>& params() const { return params_; }
  size_t total_floats() const { return values_.size(); }
  // Logical parameter count (no layout padding).
  int64_t logical_count() const;

  float* values() { return values_.data(); }
  float* grads() { return grads_.data(); }
  float* momentum() { return momentum_.data(); }
  const float* values() const { return values_.data(); }
  const float* grads() const { return grads_.data(); }
  const float* momentum() const { return momentum_.data(); }

  void zero_grads();

 private:
  std::vector<std::unique_ptr<Param>> params_;
  std::vector<float> values_, grads_, momentum_;
  size_t next_offset_ = 0;
  bool finalized_ = false;
};

}  // namespace prelude
