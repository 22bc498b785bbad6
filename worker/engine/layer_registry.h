// Which engine layer each kind of LayerSpec builds (after Caffe's LayerRegistry and
// REGISTER_LAYER_CLASS), keyed by the case of LayerSpec's `layer` oneof.
//
// A layer's .cc file registers its kind beside the class, at namespace scope:
//
//   const LayerRegistration kConv(v1::LayerSpec::kConv, LayerNaming::kWeight, "conv",
//                                 [](const v1::LayerSpec& spec, std::string name) -> std::unique_ptr<Layer> {
//                                   return std::make_unique<ConvLayer>(std::move(name), spec.conv()...);
//                                 });
//
// and build_network (model.cc) asks the registry, knowing no layer type. So the
// engine side of a new layer is its own .h/.cc and nothing else (the proto field and
// its defaults and checks in spec/ are still needed).
//
// Registration runs in static initialisers, and nothing refers to a layer's object
// file by name: from a static library the linker would silently drop it, and its
// registration with it. worker/CMakeLists.txt therefore hands consumers the engine
// archive whole (prelude_engine links prelude_engine_objects with WHOLE_ARCHIVE).
// tests/test_layer_registry.cc, which names no layer class, fails if any LayerSpec
// case lacks a factory: a proto layer without an engine class, or a lost registration.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "engine/layer.h"
#include "prelude/v1/job.pb.h"

namespace prelude {

// How build_network names the layers of a kind. The names are those of parameters
// ("conv2.weight"), reported slopes and per-layer statistics: keep them stable.
enum class LayerNaming {
  kCounted,      // <prefix><k>, k counting this kind from 1: pool1, pool2, ...
  kWeight,       // the same (conv1, fc2), and what later kAfterWeight layers are named after
  kAfterWeight,  // "<last kWeight layer>.<prefix>" (conv2.act); <prefix><k> before any (act1)
};

// Builds a layer from its spec (complete, see expand_model) under the given name.
using LayerFactory = std::function<std::unique_ptr<Layer>(const prelude::v1::LayerSpec& spec, std::string name)>;

struct LayerKind {
  LayerNaming naming;
  std::string prefix;
  LayerFactory make;
};

class LayerRegistry {
 public:
  // A function-local static, so it exists whichever layer file's initialiser runs first.
  static LayerRegistry& get();
  // Throws std::logic_error if the case already has a kind.
  void add(prelude::v1::LayerSpec::LayerCase layer_case, LayerKind kind);
  // nullptr if nothing is registered for the case (or it is LAYER_NOT_SET).
  const LayerKind* find(prelude::v1::LayerSpec::LayerCase layer_case) const;

 private:
  std::map<prelude::v1::LayerSpec::LayerCase, LayerKind> kinds_;
};

// Registers a kind during static initialisation; define one at namespace scope in the layer's .cc.
struct LayerRegistration {
  LayerRegistration(prelude::v1::LayerSpec::LayerCase layer_case, LayerNaming naming, std::string prefix,
                    LayerFactory make);
};

// Names a model's layers in order, by their kinds' naming rules.
class LayerNamer {
 public:
  std::string next(const LayerKind& kind);

 private:
  std::map<std::string, int> counts_;  // by prefix
  std::string last_weight_;
};

}  // namespace prelude
