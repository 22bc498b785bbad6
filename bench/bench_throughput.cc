// prelude-bench: training throughput of cnn-small, Prelude against PyTorch.
//
//   prelude-bench [--steps N] [--batch B] [--threads T] [--rounds R] [--torch PATH|none] [--data-root DIR]
//                 [--fma-peak GFLOPS] [--conv-algorithms-only]
//
// For each rectifier (ReLU, Leaky ReLU, PReLU shared, PReLU channel-wise) it runs
// the real training loop (run_training, the code `prelude-worker run` uses) for
// 5 warm-up + N steps on Fashion-MNIST and reads train_images_per_second from the
// summary; then, unless --torch none, it runs ../shared/anchors/torch_baseline.py
// with the same model, batch and threads, and prints a table: images/s of both,
// the speed-up, and each rectifier's cost over ReLU. Configurations are run in
// interleaved rounds (--rounds, default 3) and the median is reported, so a slow
// moment of the machine does not land on one rectifier only.
//
// Then the same rectifiers in FP32 and BF16 (training.precision) side by side:
// images/s, GFLOP/s at 114.1 MFLOP per training image of cnn-small (forward and
// backward, 28x28), and the fraction of the FMA peak: --fma-peak is the f32 FMA peak
// of the threads used (default 520, measured on 2 cores of the AMD EPYC Zen 5 this
// project runs on); the bf16 peak is twice that (vdpbf16ps does 32 bf16 multiply-adds
// where vfmadd231ps does 16 f32 ones). BF16 is left out, saying why, on a CPU
// without avx512_bf16. FP32 there is the job default, training.convAlgorithm AUTO.
//
// Last, FP32 with each training.convAlgorithm (DIRECT, AUTO, WINOGRAD) for PReLU
// channel-wise, interleaved in the same rounds; WINOGRAD and AUTO's Winograd are left
// out, saying why, on a CPU without AVX-512. --conv-algorithms-only runs just that
// section. The load average is printed before and after, since the machines are
// shared and a loaded one measures the load.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/errors.h"
#include "spec/job_spec.h"
#include "engine/context.h"
#include "engine/conv_layer.h"
#include "engine/trainer.h"

namespace {

class NullSink : public prelude::EventSink {
 public:
  void on_event(const prelude::v1::TrainingEvent&) override {}
};

// Forward and backward of one 28x28 image through cnn-small, in multiply-adds x 2.
constexpr double kFlopsPerImage = 114.1e6;

double prelude_throughput(const std::string& kind, int steps, int batch, const std::string& root,
                          const char* precision = "FP32", const char* conv_algorithm = "AUTO") {
  const std::string json = R"({"name":"bench","dataset":{"name":"fashion-mnist","trainLimit":)" +
                           std::to_string((steps + 5) * batch) +
                           R"(},"model":{"preset":"cnn-small","activation":{"kind":")" + kind +
                           R"("}},"training":{"epochs":1,"batchSize":)" + std::to_string(batch) +
                           R"(,"maxSteps":)" + std::to_string(steps + 5) +
                           R"(,"skipTest":true,"logEverySteps":1000000,"precision":")" + precision +
                           R"(","convAlgorithm":")" + conv_algorithm + R"("}})";
  auto spec = prelude::parse_job_json(json, "bench");
  prelude::apply_defaults(&spec);
  prelude::validate_job_spec(spec);
  prelude::RunOptions opt;
  opt.data_root = root;
  NullSink sink;
  return prelude::run_training(spec, opt, sink).train_images_per_second();
}

// Runs the PyTorch reference and pulls "train_images_per_s" out of its JSON line.
double torch_throughput(const std::string& script, const std::string& kind, int steps, int batch, int threads) {
  const std::string cmd = "/usr/bin/python3 " + script + " --model cnn-small --activation " + kind +
                          " --batch " + std::to_string(batch) + " --threads " + std::to_string(threads) +
                          " --steps " + std::to_string(steps) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return 0;
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  const auto k = out.find("\"train_images_per_s\":");
  return k == std::string::npos ? 0 : std::atof(out.c_str() + k + 21);
}

std::string load_average() {
  double l[3] = {0, 0, 0};
  if (getloadavg(l, 3) != 3) return "unknown";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", l[0], l[1], l[2]);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 60, batch = 64, threads = omp_get_max_threads(), rounds = 3;
  double fma_peak = 520;
  bool conv_only = false;
  std::string torch = std::string(std::getenv("PRELUDE_SOURCE_DIR") ? std::getenv("PRELUDE_SOURCE_DIR") : ".") +
                      "/../shared/anchors/torch_baseline.py";
  std::string root = std::getenv("PRELUDE_DATA_ROOT") ? std::getenv("PRELUDE_DATA_ROOT") : "/usr/share/datasets";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "prelude-bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--steps") steps = std::atoi(next().c_str());
    else if (a == "--batch") batch = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--torch") torch = next();
    else if (a == "--rounds") rounds = std::atoi(next().c_str());
    else if (a == "--data-root") root = next();
    else if (a == "--fma-peak") fma_peak = std::atof(next().c_str());
    else if (a == "--conv-algorithms-only") conv_only = true;
    else {
      std::fprintf(stderr, "usage: prelude-bench [--steps N] [--batch B] [--threads T] [--rounds R] [--torch PATH|none] [--data-root DIR] [--fma-peak GFLOPS] [--conv-algorithms-only]\n");
      return 2;
    }
  }
  if (steps < 1 || batch < 1 || threads < 1 || rounds < 1 || !(fma_peak > 0)) {
    std::fprintf(stderr, "prelude-bench: --steps, --batch, --threads, --rounds and --fma-peak must be positive\n");
    return 2;
  }
  omp_set_num_threads(threads);
  std::printf("load average before: %s\n", load_average().c_str());
  auto median = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  };
  // FP32, PReLU channel-wise, per training.convAlgorithm.
  auto conv_algorithms = [&]() -> int {
    const bool wino = prelude::cpu_has_avx512_core();
    std::vector<const char*> algorithms{"DIRECT", "AUTO"};
    if (wino) algorithms.push_back("WINOGRAD");
    else
      std::fprintf(stderr, "prelude-bench: WINOGRAD left out (and AUTO is DIRECT), because oneDNN runs %s here, "
                           "without AVX-512\n", prelude::effective_isa_name().c_str());
    std::vector<std::vector<double>> runs(algorithms.size());
    try {
      for (int round = 0; round < rounds; ++round)
        for (size_t i = 0; i < algorithms.size(); ++i)
          runs[i].push_back(prelude_throughput("PRELU_CHANNELWISE", steps, batch, root, "FP32", algorithms[i]));
    } catch (const prelude::UserError& e) {
      std::fprintf(stderr, "prelude-bench: %s\n", e.what());
      return 2;
    }
    std::printf("\nFP32 by training.convAlgorithm, PReLU channel-wise, cnn-small, batch %d, %d threads, median of %d "
                "rounds (%.1f MFLOP per image; FMA peak %.0f GFLOP/s)\n",
                batch, threads, rounds, kFlopsPerImage / 1e6, fma_peak);
    std::printf("%-10s %10s %9s %6s %10s   %s\n", "algorithm", "img/s", "GFLOP/s", "peak", "vs DIRECT", "rounds");
    const double direct = median(runs[0]);
    for (size_t i = 0; i < algorithms.size(); ++i) {
      const double m = median(runs[i]), g = m * kFlopsPerImage / 1e9;
      std::string each;
      for (double r : runs[i]) each += (each.empty() ? "" : " ") + std::to_string(static_cast<int>(r + 0.5));
      std::printf("%-10s %10.1f %9.1f %5.1f%% %9.2fx   %s\n", algorithms[i], m, g, 100 * g / fma_peak, m / direct,
                  each.c_str());
    }
    std::printf("load average after: %s\n", load_average().c_str());
    return 0;
  };
  if (conv_only) return conv_algorithms();

  const bool with_torch = torch != "none" && std::system(("test -f " + torch + " && /usr/bin/python3 -c 'import torch' 2>/dev/null").c_str()) == 0;
  if (torch != "none" && !with_torch)
    std::fprintf(stderr, "prelude-bench: PyTorch reference not available (%s, python3-torch); Prelude only\n", torch.c_str());

  struct Row {
    const char* label;
    const char* kind;
    const char* torch_kind;
    std::vector<double> ours_runs, theirs_runs, bf16_runs;
    double ours = 0, theirs = 0, bf16 = 0;
  };
  const bool with_bf16 = prelude::cpu_has_bf16();
  if (!with_bf16)
    std::fprintf(stderr, "prelude-bench: BF16 left out, because the CPU lacks avx512_bf16 (oneDNN runs %s)\n",
                 prelude::effective_isa_name().c_str());
  std::vector<Row> rows{{"ReLU", "RELU", "relu", {}, {}},
                        {"Leaky ReLU", "LEAKY_RELU", "leaky", {}, {}},
                        {"PReLU shared", "PRELU_SHARED", "prelu-shared", {}, {}},
                        {"PReLU channel-wise", "PRELU_CHANNELWISE", "prelu-channel", {}, {}}};
  std::printf("cnn-small, batch %d, %d threads, %d timed steps after 5 warm-up, median of %d rounds\n", batch,
              threads, steps, rounds);
  try {
    for (int round = 0; round < rounds; ++round)
      for (auto& r : rows) {
        r.ours_runs.push_back(prelude_throughput(r.kind, steps, batch, root));
        if (with_bf16) r.bf16_runs.push_back(prelude_throughput(r.kind, steps, batch, root, "BF16"));
        if (with_torch) r.theirs_runs.push_back(torch_throughput(torch, r.torch_kind, steps, batch, threads));
      }
    for (auto& r : rows) r.ours = median(r.ours_runs), r.theirs = median(r.theirs_runs), r.bf16 = median(r.bf16_runs);
  } catch (const prelude::UserError& e) {
    std::fprintf(stderr, "prelude-bench: %s\n", e.what());
    return 2;
  }
  std::printf("%-20s %12s %12s %9s %14s %14s\n", "rectifier", "prelude img/s", "torch img/s", "speed-up",
              "prelude vs ReLU", "torch vs ReLU");
  for (auto& r : rows) {
    std::printf("%-20s %12.1f %12.1f %8.2fx %+13.1f%% %+13.1f%%\n", r.label, r.ours, r.theirs,
                r.theirs > 0 ? r.ours / r.theirs : 0.0, 100.0 * (rows[0].ours / r.ours - 1),
                r.theirs > 0 ? 100.0 * (rows[0].theirs / r.theirs - 1) : 0.0);
  }
  std::printf("(\"vs ReLU\": extra time per image over the ReLU network; positive = slower)\n");

  std::printf("\nFP32 and BF16 (%.1f MFLOP per training image; FMA peak %.0f GFLOP/s f32, %.0f bf16)\n",
              kFlopsPerImage / 1e6, fma_peak, 2 * fma_peak);
  std::printf("%-20s %10s %9s %6s %10s %9s %6s %9s %9s\n", "rectifier", "FP32 img/s", "GFLOP/s", "peak",
              "BF16 img/s", "GFLOP/s", "peak", "BF16/FP32", "BF16/torch");
  for (auto& r : rows) {
    const double g32 = r.ours * kFlopsPerImage / 1e9, g16 = r.bf16 * kFlopsPerImage / 1e9;
    std::printf("%-20s %10.1f %9.1f %5.1f%%", r.label, r.ours, g32, 100 * g32 / fma_peak);
    if (with_bf16)
      std::printf(" %10.1f %9.1f %5.1f%% %8.2fx %8.2fx\n", r.bf16, g16, 100 * g16 / (2 * fma_peak), r.bf16 / r.ours,
                  r.theirs > 0 ? r.bf16 / r.theirs : 0.0);
    else
      std::printf(" %10s %9s %6s %9s %9s\n", "-", "-", "-", "-", "-");
  }
  return conv_algorithms();
}
