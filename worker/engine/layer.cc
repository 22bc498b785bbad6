#include "engine/layer.h"

namespace prelude {

void Layer::bind(Blob* input, bool need_input_grad) {
  in_ = input;
  need_input_grad_ = need_input_grad;
  auto& eng = Context::get().engine;
  out_.data = dnnl::memory(out_md_, eng);
  out_.diff = dnnl::memory(out_md_, eng);
  on_bind();
}

}  // namespace prelude
