#include "engine/params.h"

#include <algorithm>
#include <stdexcept>

namespace prelude {

Param* ParamStore::add(const std::string& name, ParamKind kind, const dnnl::memory::desc& md) {
  if (finalized_) throw std::logic_error("ParamStore::add after finalize");
  auto p = std::make_unique<Param>();
  p->name = name;
  p->kind = kind;
  p->md = md;
  p->offset = next_offset_;
  p->size = md.get_size() / sizeof(float);
  next_offset_ += p->size;
  params_.push_back(std::move(p));
  return params_.back().get();
}

void ParamStore::finalize() {
  if (finalized_) return;
  values_.assign(next_offset_, 0.f);
  grads_.assign(next_offset_, 0.f);
  momentum_.assign(next_offset_, 0.f);
  auto& eng = Context::get().engine;
  for (auto& p : params_) {
    p->value_ptr = values_.data() + p->offset;
    p->grad_ptr = grads_.data() + p->offset;
    p->momentum_ptr = momentum_.data() + p->offset;
    p->data = dnnl::memory(p->md, eng, p->value_ptr);
    p->diff = dnnl::memory(p->md, eng, p->grad_ptr);
  }
  finalized_ = true;
}

int64_t ParamStore::logical_count() const {
  int64_t n = 0;
  for (auto& p : params_) n += logical_size(p->md);
  return n;
}

void ParamStore::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.f); }

}  // namespace prelude
