// Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/seed-*):
// small valid inputs in the form each target takes, so that the fuzzer starts from
// what real inputs look like. The job and sweep files are the examples; the binary
// inputs (checkpoints, IDX files, specs as protobuf) are made here.
//   build/fuzz/make_seeds SOURCE_DIR   (run by tests/fuzz/run_fuzz.sh seeds)
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "artifacts/checkpoint_file.h"
#include "artifacts/onnx_export.h"
#include "spec/job_spec.h"
#include "spec/strict_json.h"
#include "spec/sweep.h"

namespace fs = std::filesystem;
namespace v1 = prelude::v1;

namespace {

fs::path corpus;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = corpus / target;
  fs::create_directories(dir);
  std::ofstream(dir / ("seed-" + name), std::ios::binary) << bytes;
}

std::string read(const fs::path& p) { return prelude::read_spec_file(p.string()); }

v1::LayerSpec conv(int out, int kernel, int padding, int stride) {
  v1::LayerSpec l;
  auto* c = l.mutable_conv();
  c->set_out_channels(out);
  c->set_kernel(kernel);
  c->set_padding(padding);
  c->set_stride(stride);
  return l;
}

v1::LayerSpec act(v1::ActivationSpec::Kind kind, double alpha) {
  v1::LayerSpec l;
  l.mutable_activation()->set_kind(kind);
  l.mutable_activation()->set_alpha_init(alpha);
  return l;
}

v1::LayerSpec pool(v1::PoolLayerSpec::Kind kind, int kernel, int stride) {
  v1::LayerSpec l;
  l.mutable_pool()->set_kind(kind);
  if (kernel) l.mutable_pool()->set_kernel(kernel);
  if (stride) l.mutable_pool()->set_stride(stride);
  return l;
}

v1::LayerSpec fc(int out) {
  v1::LayerSpec l;
  l.mutable_fc()->set_out_features(out);
  return l;
}

void tensor(v1::Checkpoint* c, const std::string& name, v1::Tensor::Kind kind, std::vector<int64_t> dims,
            bool momentum) {
  v1::Tensor* t = c->add_params();
  t->set_name(name);
  t->set_kind(kind);
  int64_t n = 1;
  for (int64_t d : dims) {
    t->add_dims(d);
    n *= d;
  }
  for (int64_t i = 0; i < n; ++i) {
    t->add_values(0.01f * static_cast<float>(i) - 0.05f);
    if (momentum) t->add_momentum(0.001f * static_cast<float>(i));
  }
}

// A model on 1 x 4 x 4 images with 3 classes, its layers as a job spec gives them.
v1::Checkpoint checkpoint(const std::vector<v1::LayerSpec>& layers) {
  v1::Checkpoint c;
  c.set_format_version(prelude::kCheckpointVersion);
  v1::JobSpec& spec = *c.mutable_spec();
  spec.set_name("tiny");
  for (const auto& l : layers) *spec.mutable_model()->add_layers() = l;
  prelude::apply_defaults(&spec);
  for (const auto& l : prelude::expand_model(spec.model(), 3)) *c.add_layers() = l;
  c.mutable_io()->set_channels(1);
  c.mutable_io()->set_height(4);
  c.mutable_io()->set_width(4);
  c.mutable_io()->set_num_classes(3);
  c.mutable_io()->set_mean(0.286);
  c.mutable_io()->set_std(0.353);
  for (const char* name : {"a", "b", "c"}) c.mutable_io()->add_class_names(name);
  c.mutable_progress()->set_step(5);
  c.mutable_progress()->set_total_steps(10);
  c.mutable_progress()->set_step_in_epoch(5);
  c.set_ranks(1);
  c.set_threads_per_rank(1);
  c.set_job_id("job-1");
  return c;
}

void checkpoints() {
  // conv3x3(2) prelu-cw maxpool2 fc3: 1x4x4 -> 2x4x4 -> 2x2x2 -> 3
  v1::Checkpoint a = checkpoint({conv(2, 3, 1, 1), act(v1::ActivationSpec::PRELU_CHANNELWISE, 0.25),
                                 pool(v1::PoolLayerSpec::MAX, 2, 2), fc(3)});
  tensor(&a, "conv1.weight", v1::Tensor::WEIGHT, {2, 1, 3, 3}, true);
  tensor(&a, "conv1.bias", v1::Tensor::BIAS, {2}, true);
  tensor(&a, "conv1.act.slope", v1::Tensor::SLOPE, {2}, true);
  tensor(&a, "fc2.weight", v1::Tensor::WEIGHT, {3, 8}, true);
  tensor(&a, "fc2.bias", v1::Tensor::BIAS, {3}, true);

  // conv3x3(2,s2) relu avgpool(1) globalavgpool fc4 prelu fc3 leaky:
  // 1x4x4 -> 2x2x2 -> 2x2x2 -> 2x1x1 -> 4 -> 3
  v1::Checkpoint b = checkpoint({conv(2, 3, 1, 2), act(v1::ActivationSpec::RELU, 0), pool(v1::PoolLayerSpec::AVG, 1, 1),
                                 pool(v1::PoolLayerSpec::GLOBAL_AVG, 0, 0), fc(4),
                                 act(v1::ActivationSpec::PRELU_SHARED, 0.25), fc(3),
                                 act(v1::ActivationSpec::LEAKY_RELU, 0.01)});
  // The last layer must be fc for a spec; the leaky one is only in the checkpoint's layers.
  b.mutable_spec()->mutable_model()->mutable_layers()->RemoveLast();
  tensor(&b, "conv1.weight", v1::Tensor::WEIGHT, {2, 1, 3, 3}, false);
  tensor(&b, "conv1.bias", v1::Tensor::BIAS, {2}, false);
  tensor(&b, "fc2.weight", v1::Tensor::WEIGHT, {4, 2}, false);
  tensor(&b, "fc2.bias", v1::Tensor::BIAS, {4}, false);
  tensor(&b, "fc2.act.slope", v1::Tensor::SLOPE, {1}, false);
  tensor(&b, "fc3.weight", v1::Tensor::WEIGHT, {3, 4}, false);
  tensor(&b, "fc3.bias", v1::Tensor::BIAS, {3}, false);

  for (const auto& [name, c] : {std::pair{"conv-prelu-pool-fc", a}, std::pair{"conv-relu-gap-fc-prelu-fc", b}}) {
    // Seeds are valid: they decode and export (a UserError otherwise).
    prelude::export_onnx(prelude::decode_checkpoint(prelude::encode_checkpoint(c), name), name);
    std::string payload;
    c.SerializeToString(&payload);
    write("fuzz_checkpoint", std::string(name) + ".ckpt", '\0' + prelude::encode_checkpoint(c));
    write("fuzz_checkpoint", std::string(name) + ".payload", '\1' + payload);
  }
}

std::string gzip(const std::string& raw) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, raw.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(&out[0]);
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string idx(const std::vector<uint32_t>& dims) {
  std::string out = {0, 0, 8, static_cast<char>(dims.size())};
  uint64_t n = 1;
  for (uint32_t d : dims) {
    out += {static_cast<char>(d >> 24), static_cast<char>(d >> 16), static_cast<char>(d >> 8), static_cast<char>(d)};
    n *= d;
  }
  for (uint64_t i = 0; i < n; ++i) out += static_cast<char>(i * 37 % 256);
  return out;
}

// The harness's first byte: bit 0 labels (else images), bit 1 gzip the rest first.
void idx_files() {
  const std::string images = idx({3, 4, 4}), labels = idx({3});
  write("fuzz_idx", "images.idx", '\0' + images);
  write("fuzz_idx", "labels.idx", '\1' + labels);
  write("fuzz_idx", "images.gzip-by-harness", '\2' + images);
  write("fuzz_idx", "labels.gzip-by-harness", '\3' + labels);
  write("fuzz_idx", "images.idx.gz", '\0' + gzip(images));
  write("fuzz_idx", "labels.idx.gz", '\1' + gzip(labels));
}

void specs(const fs::path& source) {
  for (const auto& e : fs::directory_iterator(source / "examples/jobs")) {
    if (e.path().extension() != ".json") continue;
    const std::string text = read(e.path());
    write("fuzz_job_json", e.path().filename().string(), text);
    std::string bytes;
    prelude::parse_job_json(text, e.path().string()).SerializeToString(&bytes);
    write("fuzz_spec_proto", e.path().stem().string() + ".jobspec", '\0' + bytes);
  }
  for (const auto& e : fs::directory_iterator(source / "examples/experiments")) {
    if (e.path().extension() != ".json") continue;
    const std::string text = read(e.path());
    write("fuzz_sweep_json", e.path().filename().string(), text);
    v1::SweepSpec sweep;
    prelude::parse_strict_json(text, e.path().string(), &sweep);
    std::string bytes;
    sweep.SerializeToString(&bytes);
    write("fuzz_spec_proto", e.path().stem().string() + ".sweepspec", '\1' + bytes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds SOURCE_DIR (writes SOURCE_DIR/tests/fuzz/corpus/*/seed-*)\n";
    return 2;
  }
  const fs::path source = argv[1];
  corpus = source / "tests/fuzz/corpus";
  try {
    specs(source);
    checkpoints();
    idx_files();
  } catch (const std::exception& e) {
    std::cerr << "make_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
