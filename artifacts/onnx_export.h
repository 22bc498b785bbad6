// ONNX export of a trained model (opset 13), built on Debian's libonnx (onnx.proto).
//
// The graph's input "pixels" is float32 N x C x H x W with values scaled to [0, 1];
// its first two nodes apply the data set's normalisation (x - mean) / std, so the
// caller passes plain pixels (the metadata says so and records mean and std). Its
// output "logits" is N x classes. Layers map one to one: Conv, Relu, LeakyRelu,
// PRelu (slopes {C,1,1} after a convolution, {C} after a fully connected layer, {1}
// channel-shared), MaxPool, AveragePool, GlobalAveragePool, Flatten + Gemm.
#pragma once

#include <string>

#include "prelude/v1/checkpoint.pb.h"

namespace prelude {

// The serialized onnx.ModelProto. Throws UserError (starting with `source`) when the
// checkpoint's parameters do not fit its layers.
std::string export_onnx(const prelude::v1::Checkpoint& checkpoint, const std::string& source);

}  // namespace prelude
