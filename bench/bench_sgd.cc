// prelude-bench-sgd: the optimizer step over cnn-small's parameters (issue 17).
//
//   prelude-bench-sgd [--iters N] [--rounds R] [--activation KIND] [--threads T]
//
// Builds cnn-small (batch 64, Fashion-MNIST's 1x28x28) only for its parameter arena,
// and times one SGD step (momentum 0.9, weight decay 5e-4) over it, several ways:
//   serial-sse    the update as it was before issue 17: one parameter at a time, one
//                 thread, compiled without -march (SSE2), as the engine was
//   omp-for-simd  `#pragma omp parallel for simd` per parameter (baseline ISA)
//   <isa> x1      each kernel of sgd_kernels() over the whole arena on one thread
//   Sgd::step     the engine's step: the arena split among the threads, widest ISA
// Each figure is the median over R rounds of the mean of N steps, in microseconds.
// Gradients are fixed random values; every way runs on its own copy of the arena.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/network.h"
#include "engine/sgd.h"
#include "spec/job_spec.h"

using namespace prelude;

namespace {

// The update before issue 17, verbatim (engine/sgd.cc's update()).
void serial_update(float* __restrict w, const float* __restrict g, float* __restrict v, size_t n, float lr,
                   float momentum, float decay) {
  for (size_t i = 0; i < n; ++i) {
    v[i] = momentum * v[i] + g[i] + decay * w[i];
    w[i] -= lr * v[i];
  }
}

void omp_for_simd_update(float* __restrict w, const float* __restrict g, float* __restrict v, size_t n, float lr,
                         float momentum, float decay) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) {
    v[i] = momentum * v[i] + g[i] + decay * w[i];
    w[i] -= lr * v[i];
  }
}

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

double time_us(const std::function<void()>& step, int iters, int rounds) {
  for (int i = 0; i < 20; ++i) step();  // warm-up: pages, threads, caches
  std::vector<double> r;
  for (int k = 0; k < rounds; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) step();
    const auto t1 = std::chrono::steady_clock::now();
    r.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / iters);
  }
  return median(r);
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 500, rounds = 7;
  std::string activation = "PRELU_CHANNELWISE";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--iters") iters = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--rounds") rounds = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--activation") activation = argv[i + 1];
    else if (a == "--threads") omp_set_num_threads(std::max(1, std::atoi(argv[i + 1])));
    else {
      std::fprintf(stderr, "usage: %s [--iters N] [--rounds R] [--activation KIND] [--threads T]\n", argv[0]);
      return 2;
    }
  }
  try {
  auto spec = parse_job_json(R"({"name":"bench","dataset":{"name":"fashion-mnist"},"model":{"preset":"cnn-small",)"
                             R"("activation":{"kind":")" + activation + R"("}}})",
                             "bench");
  apply_defaults(&spec);
  validate_job_spec(spec);
  auto net = build_network(expand_model(spec.model(), 10), {64, 1, 28, 28});
  ParamStore& ps = net->params();
  const size_t n = ps.total_floats();
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> u(-0.01f, 0.01f);
  std::vector<float> w0(n), g(n);
  for (size_t i = 0; i < n; ++i) w0[i] = u(gen), g[i] = u(gen);
  std::vector<float> w(n), v(n);
  auto reset = [&] {
    w = w0;
    std::fill(v.begin(), v.end(), 0.f);
  };
  const float lr = 1e-6f;  // small, so many steps stay in a normal range
  auto per_param = [&](void (*fn)(float*, const float*, float*, size_t, float, float, float)) {
    for (auto& p : ps.params()) {
      const float decay = p->kind != ParamKind::kSlope ? 5e-4f : 0.f;
      fn(w.data() + p->offset, g.data() + p->offset, v.data() + p->offset, p->size, lr, 0.9f, decay);
    }
  };

  std::printf("SGD step over cnn-small's parameters (%s): %zu floats in %zu parameters, %d OpenMP threads\n",
              activation.c_str(), n, ps.params().size(), omp_get_max_threads());
  std::printf("%-16s %10s %8s\n", "way", "us/step", "GB/s");
  const double bytes = 5.0 * n * sizeof(float);  // w, v read and written, g read
  auto report = [&](const char* name, double us) { std::printf("%-16s %10.1f %8.1f\n", name, us, bytes / us / 1e3); };

  reset();
  const double serial = time_us([&] { per_param(serial_update); }, iters, rounds);
  report("serial-sse", serial);
  reset();
  report("omp-for-simd", time_us([&] { per_param(omp_for_simd_update); }, iters, rounds));
  for (const auto& k : sgd_kernels()) {
    reset();
    const std::string name = std::string(k.isa) + " x1";
    report(name.c_str(), time_us([&] { per_param(k.fn); }, iters, rounds));
  }
  // The engine's step, on the network's own arena.
  std::copy(w0.begin(), w0.end(), ps.values());
  std::copy(g.begin(), g.end(), ps.grads());
  std::fill(ps.momentum(), ps.momentum() + n, 0.f);
  Sgd sgd(ps, {0.9, 5e-4, false});
  const double engine = time_us([&] { sgd.step(lr); }, iters, rounds);
  report("Sgd::step", engine);
  std::printf("Sgd::step (%s, %d threads) is %.2fx the serial step\n", sgd_kernels().front().isa,
              omp_get_max_threads(), serial / engine);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prelude-bench-sgd: %s\n", e.what());
    return 1;
  }
  return 0;
}
