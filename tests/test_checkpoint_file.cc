// The checkpoint file format (artifacts/checkpoint_file.h) and the rule for what may
// change when resuming (artifacts/resume_check.h): every damaged, foreign or
// inconsistent file is refused with a message naming it, and writes are atomic.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "artifacts/checkpoint_file.h"
#include "artifacts/onnx_export.h"
#include "artifacts/resume_check.h"
#include "common/errors.h"
#include "spec/job_spec.h"
#include "test_util.h"

namespace prelude {
namespace {

using testutil::user_error_of;

namespace v1 = prelude::v1;
namespace fs = std::filesystem;

using testutil::spec_from;

v1::Checkpoint small_checkpoint() {
  v1::Checkpoint c;
  c.set_format_version(kCheckpointVersion);
  *c.mutable_spec() = spec_from(R"({"training":{"epochs":2}})");
  c.mutable_io()->set_channels(1);
  c.mutable_io()->set_height(28);
  c.mutable_io()->set_width(28);
  c.mutable_io()->set_num_classes(10);
  v1::Tensor* t = c.add_params();
  t->set_name("conv1.weight");
  t->set_kind(v1::Tensor::WEIGHT);
  for (int64_t d : {2, 1, 3, 3}) t->add_dims(d);
  for (int i = 0; i < 18; ++i) {
    t->add_values(0.5f * i - 3.f);
    t->add_momentum(-0.25f * i);
  }
  c.mutable_progress()->set_step(7);
  c.mutable_progress()->set_total_steps(100);
  return c;
}

// A checkpoint with layers, which ONNX export reads: conv3x3(2) PReLU-cw maxpool2 fc3
// on 1x4x4 images (1x4x4 -> 2x4x4 -> 2x2x2 -> 3).
v1::Checkpoint layered_checkpoint() {
  v1::Checkpoint c = small_checkpoint();
  c.clear_params();
  auto* conv = c.add_layers()->mutable_conv();
  conv->set_out_channels(2), conv->set_kernel(3), conv->set_padding(1), conv->set_stride(1);
  auto* act = c.add_layers()->mutable_activation();
  act->set_kind(v1::ActivationSpec::PRELU_CHANNELWISE), act->set_alpha_init(0.25);
  auto* pool = c.add_layers()->mutable_pool();
  pool->set_kind(v1::PoolLayerSpec::MAX), pool->set_kernel(2), pool->set_stride(2);
  c.add_layers()->mutable_fc()->set_out_features(3);
  c.mutable_io()->set_height(4), c.mutable_io()->set_width(4), c.mutable_io()->set_num_classes(3);
  auto tensor = [&](const char* name, v1::Tensor::Kind kind, std::vector<int64_t> dims) {
    v1::Tensor* t = c.add_params();
    t->set_name(name), t->set_kind(kind);
    int64_t n = 1;
    for (int64_t d : dims) t->add_dims(d), n *= d;
    for (int64_t i = 0; i < n; ++i) t->add_values(0.01f * static_cast<float>(i));
  };
  tensor("conv1.weight", v1::Tensor::WEIGHT, {2, 1, 3, 3});
  tensor("conv1.bias", v1::Tensor::BIAS, {2});
  tensor("conv1.act.slope", v1::Tensor::SLOPE, {2});
  tensor("fc2.weight", v1::Tensor::WEIGHT, {3, 8});
  tensor("fc2.bias", v1::Tensor::BIAS, {3});
  return c;
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/prelude-ckpt-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

TEST(CheckpointFile, RoundTripIsExact) {
  const v1::Checkpoint c = small_checkpoint();
  const std::string bytes = encode_checkpoint(c);
  ASSERT_EQ(bytes.compare(0, 8, "PRLDCKPT"), 0);
  EXPECT_EQ(bytes[8], 1);  // version 1, little-endian
  const v1::Checkpoint back = decode_checkpoint(bytes, "x.ckpt");
  EXPECT_EQ(back.SerializeAsString(), c.SerializeAsString());
  // The header's checksum is the SHA-256 of the payload: check it against a known
  // digest of a known text first, then against the payload.
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(verify_checkpoint_bytes(bytes, "x.ckpt").sha256_hex, sha256_hex(bytes.substr(kCheckpointHeaderBytes)));
}

TEST(CheckpointFile, RefusesDamagedFilesNamingThem) {
  const std::string good = encode_checkpoint(small_checkpoint());
  EXPECT_EQ(user_error_of([&] { decode_checkpoint("hello", "a.ckpt"); }),
            "a.ckpt: not a Prelude checkpoint (no PRLDCKPT header)");
  std::string wrong_magic = good;
  wrong_magic[0] = 'X';
  EXPECT_NE(user_error_of([&] { decode_checkpoint(wrong_magic, "a.ckpt"); }).find("not a Prelude checkpoint"),
            std::string::npos);
  std::string newer = good;
  newer[8] = 2;
  EXPECT_EQ(user_error_of([&] { decode_checkpoint(newer, "b.ckpt"); }),
            "b.ckpt: checkpoint format version 2, but this Prelude reads version 1 (written by a newer Prelude)");
  const std::string truncated = good.substr(0, good.size() - 10);
  EXPECT_NE(user_error_of([&] { decode_checkpoint(truncated, "c.ckpt"); }).find("c.ckpt: truncated or extended"),
            std::string::npos);
  for (size_t at : {size_t{30}, kCheckpointHeaderBytes + 5, good.size() - 1}) {  // header digest, payload
    std::string corrupted = good;
    corrupted[at] ^= 0x10;
    EXPECT_EQ(user_error_of([&] { decode_checkpoint(corrupted, "d.ckpt"); }),
              "d.ckpt: checksum mismatch: the file is corrupted")
        << "byte " << at;
  }
}

TEST(CheckpointFile, RefusesInconsistentContent) {
  v1::Checkpoint c = small_checkpoint();
  c.mutable_params(0)->add_values(1.f);
  EXPECT_EQ(user_error_of([&] { decode_checkpoint(encode_checkpoint(c), "e.ckpt"); }),
            "e.ckpt: parameter 'conv1.weight' has 19 values for a shape of 18");
  c = small_checkpoint();
  c.mutable_params(0)->mutable_momentum()->RemoveLast();
  EXPECT_NE(user_error_of([&] { decode_checkpoint(encode_checkpoint(c), "e.ckpt"); }).find("17 momentum values"),
            std::string::npos);
  c = small_checkpoint();
  c.mutable_progress()->set_step(101);
  EXPECT_NE(user_error_of([&] { decode_checkpoint(encode_checkpoint(c), "e.ckpt"); }).find("progress is inconsistent"),
            std::string::npos);
  c = small_checkpoint();
  c.clear_params();
  EXPECT_EQ(user_error_of([&] { decode_checkpoint(encode_checkpoint(c), "e.ckpt"); }), "e.ckpt: holds no parameters");
}

// Found by fuzzing (tests/fuzz, fuzz_checkpoint): a pool stride of 0 in a checkpoint's
// layers decoded, and exporting it to ONNX (which the coordinator does for a download)
// divided by zero; so did a conv stride of 0. The layers are now checked as a job
// spec's are, and the input size with them.
TEST(CheckpointFile, RefusesLayersNoJobCouldHave) {
  const v1::Checkpoint good = layered_checkpoint();
  EXPECT_FALSE(export_onnx(decode_checkpoint(encode_checkpoint(good), "g.ckpt"), "g.ckpt").empty());

  v1::Checkpoint c = good;
  c.mutable_layers(2)->mutable_pool()->set_stride(0);
  EXPECT_EQ(user_error_of([&] { decode_checkpoint(encode_checkpoint(c), "e.ckpt"); }),
            "e.ckpt: layers[2].pool.stride: must be between 1 and 8, got 0");
  c = good;
  c.mutable_layers(0)->mutable_conv()->set_stride(0);
  EXPECT_EQ(user_error_of([&] { decode_checkpoint(encode_checkpoint(c), "e.ckpt"); }),
            "e.ckpt: layers[0].conv.stride: must be between 1 and 8, got 0");
  c = good;
  c.mutable_layers(1)->mutable_activation()->clear_kind();
  EXPECT_NE(user_error_of([&] { decode_checkpoint(encode_checkpoint(c), "e.ckpt"); }).find("layers[1].activation.kind"),
            std::string::npos);
  c = good;
  c.mutable_io()->set_height(INT32_MAX);
  EXPECT_EQ(user_error_of([&] { decode_checkpoint(encode_checkpoint(c), "e.ckpt"); }),
            "e.ckpt: io.height: must be between 1 and 65536, got 2147483647");
}

// export_onnx is also given checkpoints that were never decoded (a tool's, a test's):
// it refuses what it cannot shape rather than dividing by zero or overflowing.
TEST(CheckpointFile, ExportRefusesWhatItCannotShape) {
  v1::Checkpoint c = layered_checkpoint();
  c.mutable_layers(2)->mutable_pool()->set_stride(0);
  EXPECT_EQ(user_error_of([&] { export_onnx(c, "x.ckpt"); }),
            "x.ckpt: cannot export to ONNX: layer 2: pool.stride: must be between 1 and 8, got 0");
  c = layered_checkpoint();
  c.mutable_layers(0)->mutable_conv()->set_stride(0);
  EXPECT_NE(user_error_of([&] { export_onnx(c, "x.ckpt"); }).find("layer 0: conv.stride"), std::string::npos);
  // A kernel larger than the (padded) input leaves nothing.
  c = layered_checkpoint();
  c.mutable_layers(0)->mutable_conv()->set_kernel(7), c.mutable_layers(0)->mutable_conv()->set_padding(0);
  EXPECT_EQ(user_error_of([&] { export_onnx(c, "x.ckpt"); }),
            "x.ckpt: cannot export to ONNX: layer 0: an input of 4x4 is too small for it");
  // 4096 x 2^30 x 2^30 features (2^72) into the fc layer: refused, not overflowed.
  c = layered_checkpoint();
  c.mutable_io()->set_height(INT32_MAX - 1), c.mutable_io()->set_width(INT32_MAX - 1);
  c.mutable_layers(0)->mutable_conv()->set_out_channels(4096);
  for (int i : {0, 1, 2}) {
    v1::Tensor* t = c.mutable_params(i);
    t->set_dims(0, 4096);
    t->mutable_values()->Resize(i == 0 ? 4096 * 9 : 4096, 0.f);
  }
  EXPECT_EQ(user_error_of([&] { export_onnx(c, "x.ckpt"); }),
            "x.ckpt: cannot export to ONNX: layer 3: more than 2^40 input features");
}

TEST(CheckpointFile, WritesAtomicallyAndReadsBack) {
  TempDir dir;
  const std::string path = (dir.path / "step-7.ckpt").string();
  write_file_atomically(path, encode_checkpoint(small_checkpoint()));
  EXPECT_EQ(read_checkpoint_file(path).progress().step(), 7);
  // Nothing but the file itself is left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += (e.path().filename() == "step-7.ckpt") ? 1 : 100;
  EXPECT_EQ(files, 1);
  // Overwriting replaces the whole file.
  v1::Checkpoint later = small_checkpoint();
  later.mutable_progress()->set_step(9);
  write_file_atomically(path, encode_checkpoint(later));
  EXPECT_EQ(read_checkpoint_file(path).progress().step(), 9);
}

TEST(CheckpointFile, UnwritableAndMissingFilesAreUserErrors) {
  EXPECT_EQ(user_error_of([] { write_file_atomically("/nonexistent-dir/x.ckpt", "data"); }),
            "/nonexistent-dir/x.ckpt: cannot write: No such file or directory");
  EXPECT_EQ(user_error_of([] { read_checkpoint_file("/nonexistent-dir/x.ckpt"); }),
            "/nonexistent-dir/x.ckpt: cannot read: No such file or directory");
}

TEST(CheckpointFile, FullDiskLeavesNoFileAndNamesTheReason) {
  // A 64 KiB tmpfs: a 200 KB write cannot fit. Needs mount rights (root, not in
  // every container).
  TempDir dir;
  const std::string mnt = (dir.path / "small").string();
  fs::create_directory(mnt);
  if (std::system(("mount -t tmpfs -o size=64k tmpfs " + mnt + " 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "skipped, because this machine does not allow mounting a small tmpfs";
  const std::string path = mnt + "/final.ckpt";
  const std::string err = user_error_of([&] { write_file_atomically(path, std::string(200000, 'x')); });
  EXPECT_EQ(err, path + ": cannot write: No space left on device");
  EXPECT_TRUE(fs::is_empty(mnt));  // neither the file nor its temporary is left
  (void)std::system(("umount " + mnt).c_str());
}

TEST(ResumeCheck, OnlyTheLengthOfTheRunAndReportingMayChange) {
  v1::Checkpoint c;
  *c.mutable_spec() = spec_from(R"({"name":"a","training":{"epochs":2,"learningRate":0.01}})");
  // Longer, renamed, other logging and checkpointing: fine.
  check_resume_compatible(spec_from(R"({"name":"b","training":{"epochs":5,"learningRate":0.01,"maxSteps":900,
      "logEverySteps":7,"checkpoint":{"everySteps":10},"dataParallel":{"bucketBytes":65536}}})"),
                          "job.json", c, "step-7.ckpt");
  EXPECT_EQ(user_error_of([&] {
              check_resume_compatible(spec_from(R"({"training":{"epochs":2,"learningRate":0.02}})"), "job.json", c,
                                      "step-7.ckpt");
            }),
            "job.json: training.learningRate: differs from the checkpoint's (step-7.ckpt): 0.02 here, 0.01 there; "
            "when resuming, only the name, epochs, maxSteps, logging, checkpointing and data-parallel settings may "
            "change");
  EXPECT_NE(user_error_of([&] {
              check_resume_compatible(spec_from(R"({"name":"a","model":{"activation":{"kind":"RELU"}},
                  "training":{"epochs":2,"learningRate":0.01}})"), "job.json", c, "step-7.ckpt");
            }).find("job.json: model.activation.kind: differs"),
            std::string::npos);
  EXPECT_NE(user_error_of([&] {
              check_resume_compatible(spec_from(R"({"name":"a","dataset":{"name":"fashion-mnist","trainLimit":100},
                  "training":{"epochs":2,"learningRate":0.01}})"), "job.json", c, "step-7.ckpt");
            }).find("dataset.trainLimit: differs"),
            std::string::npos);
  EXPECT_NE(user_error_of([&] {
              check_resume_compatible(spec_from(R"({"name":"a","training":{"epochs":2,"learningRate":0.01,
                  "seed":2}})"), "job.json", c, "step-7.ckpt");
            }).find("training.seed: differs from the checkpoint's (step-7.ckpt): 2 here, 1 there"),
            std::string::npos);
}

TEST(ResumeCheck, NamesTheLayerThatDiffers) {
  const auto a = spec_from(R"({"model":{"layers":[{"conv":{"outChannels":8}},{"activation":{}},
      {"pool":{}},{"fc":{"outFeatures":10}}]}})");
  const auto b = spec_from(R"({"model":{"layers":[{"conv":{"outChannels":16}},{"activation":{}},
      {"pool":{}},{"fc":{"outFeatures":10}}]}})");
  EXPECT_EQ(first_difference(a, b), "model.layers[0].conv.outChannels");
  EXPECT_EQ(first_difference(a, a), "");
}

}  // namespace
}  // namespace prelude
