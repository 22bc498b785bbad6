// The models a job keeps, as a user meets them through `prelude` against a fake
// JobService: `checkpoints`, what `get` shows of checkpoints and of the test set by
// class, `download` (the bytes exactly, verified, never half-written) and `delete`.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "artifacts/checkpoint_file.h"
#include "cli_fixture.h"
#include "spec/events.h"

namespace prelude::client {
namespace {

namespace v1 = prelude::v1;
namespace fs = std::filesystem;
using google::protobuf::util::MessageDifferencer;
using testing::job;
using testing::kT0;
using testing::Result;

const std::vector<std::string> kFashionClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

v1::CheckpointInfo checkpoint(int64_t step, int epoch, bool final, int64_t bytes, char sha_digit) {
  v1::CheckpointInfo c;
  c.set_step(step);
  c.set_epoch(epoch);
  c.set_final(final);
  c.set_bytes(bytes);
  c.set_sha256("0123456789ab" + std::string(52, sha_digit));
  c.mutable_create_time()->set_seconds(kT0 + step);
  return c;
}

// A job that trained 2 epochs of 100 steps and kept a mid-epoch checkpoint, the end
// of epoch 1 and the final model.
v1::Job trained_job(const std::string& id) {
  v1::Job j = job(id, v1::SUCCEEDED);
  *j.add_checkpoints() = checkpoint(50, 0, false, 900, 'a');
  *j.add_checkpoints() = checkpoint(100, 1, false, 4404019, 'b');
  *j.add_checkpoints() = checkpoint(200, 2, true, 4404019, 'c');
  return j;
}

// A summary of 1000 test images per class: class i right 800 + 19 i times, the rest
// taken for the next class (and 5 for the one after it).
v1::TrainingEvent summary_by_class() {
  v1::TrainingEvent t;
  set_event_kind(&t, v1::TrainingEvent::SUMMARY);
  t.set_steps(200);
  t.set_test_loss(0.35);
  t.set_test_accuracy(0.8855);
  const int n = static_cast<int>(kFashionClasses.size());
  for (int i = 0; i < n; ++i) {
    t.add_class_names(kFashionClasses[i]);
    const int right = 800 + 19 * i;
    t.add_class_accuracy(right / 1000.0);
    for (int predicted = 0; predicted < n; ++predicted) {
      int count = predicted == i ? right : 0;
      if (predicted == (i + 1) % n) count = 1000 - right - 5;
      if (predicted == (i + 2) % n) count = 5;
      t.add_confusion_matrix(count);
    }
  }
  return t;
}

// Bytes of every value, NULs and newlines included, that no text handling would keep.
std::string model_bytes(size_t n) {
  std::string bytes(n, '\0');
  uint32_t x = 12345;
  for (auto& b : bytes) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<char>(x >> 24);
  }
  return bytes;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The names in a directory: what a download left behind.
std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class ClientModels : public testing::ClientCli {
 protected:
  void SetUp() override {
    dir = fs::path(::testing::TempDir()) /
          ("models-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fake.service.add_job(trained_job("job-1"));
    fake.service.models["job-1"] = bytes;
    fake.service.download_chunk_bytes = 1000;
  }

  // `prelude download job-1 ARGS... -o <dir>/model.ckpt`, expected to fail with exit 3
  // leaving nothing behind.
  void expect_failed_download_leaves_nothing(const std::string& message_start) {
    const Result r = run({"download", "job-1", "-o", (dir / "model.ckpt").string()});
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_EQ(r.err.rfind("prelude: " + message_start, 0), 0u) << r.err;
    EXPECT_NE(r.err.find("; nothing was written to " + (dir / "model.ckpt").string() + "\n"), std::string::npos)
        << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(files_in(dir), std::vector<std::string>{}) << "no file and no temporary file";
  }

  const std::string bytes = model_bytes(10 * 1000 + 123);  // 11 chunks, the last one short
  fs::path dir;
};

// ---- checkpoints

TEST_F(ClientModels, CheckpointsTableHasStepEpochsFinalSizeShaAndTime) {
  const Result r = run({"checkpoints", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "STEP  EPOCHS  FINAL     SIZE  SHA256        CREATED\n"
            "  50       0  -        900 B  0123456789ab  2026-01-02T03:04:55Z\n"
            " 100       1  -      4.2 MiB  0123456789ab  2026-01-02T03:05:45Z\n"
            " 200       2  yes    4.2 MiB  0123456789ab  2026-01-02T03:07:25Z\n");
}

TEST_F(ClientModels, CheckpointsJsonIsAnArrayOfCheckpointInfoWithEveryField) {
  const Result r = run({"checkpoints", "job-1", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  google::protobuf::ListValue array;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &array).ok()) << r.out;
  const v1::Job expected = trained_job("job-1");
  ASSERT_EQ(array.values_size(), expected.checkpoints_size()) << r.out;
  for (int i = 0; i < array.values_size(); ++i) {
    std::string element;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(array.values(i), &element).ok());
    v1::CheckpointInfo parsed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(element, &parsed).ok()) << element;
    EXPECT_TRUE(MessageDifferencer::Equals(parsed, expected.checkpoints(i))) << element;
  }
  // One checkpoint a line, defaults too, so that `jq '.[] | select(.final == false)'` finds them.
  EXPECT_EQ(r.out.rfind("[\n  {\"step\":\"50\",\"epoch\":0,\"final\":false,\"bytes\":\"900\",", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 5) << r.out;
}

TEST_F(ClientModels, CheckpointsOfAJobWithoutAnySaysSoAndExits0) {
  fake.service.add_job(job("job-2", v1::RUNNING));
  fake.service.add_job(job("job-3", v1::FAILED));
  const Result running = run({"checkpoints", "job-2"});
  EXPECT_EQ(running.code, 0);
  EXPECT_EQ(running.out, "");
  EXPECT_EQ(running.err, "job-2 has no checkpoints yet\n");
  EXPECT_EQ(run({"checkpoints", "job-3"}).err, "job-3 has no checkpoints\n");
  const Result json = run({"checkpoints", "job-2", "--format", "json"});
  EXPECT_EQ(json.code, 0);
  EXPECT_EQ(json.out, "[]\n");
  EXPECT_EQ(json.err, "");
}

TEST_F(ClientModels, CheckpointsOfAnUnknownJobIsExit3NotFound) {
  const Result r = run({"checkpoints", "job-404"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "prelude: NOT_FOUND: job-404: no such job\n");
}

// ---- get

TEST_F(ClientModels, GetShowsCheckpointsAccuracyByClassAndTheConfusionMatrix) {
  v1::Job j = trained_job("job-5");
  *j.mutable_latest_metrics() = summary_by_class();
  fake.service.add_job(j);
  const Result r = run({"get", "job-5"});
  EXPECT_EQ(r.code, 0) << r.err;
  const std::string expected =
      "By class   test set at the end: accuracy, confusion matrix (rows: true class, columns: predicted)\n"
      "  #  CLASS        TEST ACC    0    1    2    3    4    5    6    7    8    9\n"
      "  0  T-shirt/top    0.8000  800  195    5    0    0    0    0    0    0    0\n"
      "  1  Trouser        0.8190    0  819  176    5    0    0    0    0    0    0\n"
      "  2  Pullover       0.8380    0    0  838  157    5    0    0    0    0    0\n"
      "  3  Dress          0.8570    0    0    0  857  138    5    0    0    0    0\n"
      "  4  Coat           0.8760    0    0    0    0  876  119    5    0    0    0\n"
      "  5  Sandal         0.8950    0    0    0    0    0  895  100    5    0    0\n"
      "  6  Shirt          0.9140    0    0    0    0    0    0  914   81    5    0\n"
      "  7  Sneaker        0.9330    0    0    0    0    0    0    0  933   62    5\n"
      "  8  Bag            0.9520    5    0    0    0    0    0    0    0  952   43\n"
      "  9  Ankle boot     0.9710   24    5    0    0    0    0    0    0    0  971\n"
      "Kept       3 checkpoints; `prelude download job-5 -o FILE` gets the final model\n"
      "  STEP  EPOCHS  FINAL     SIZE  SHA256        CREATED\n"
      "    50       0  -        900 B  0123456789ab  2026-01-02T03:04:55Z\n"
      "   100       1  -      4.2 MiB  0123456789ab  2026-01-02T03:05:45Z\n"
      "   200       2  yes    4.2 MiB  0123456789ab  2026-01-02T03:07:25Z\n";
  ASSERT_GE(r.out.size(), expected.size());
  EXPECT_EQ(r.out.substr(r.out.size() - expected.size()), expected) << r.out;
  EXPECT_NE(r.out.find("Metrics    summary  test loss 0.3500 acc 0.8855  200 steps\n"), std::string::npos) << r.out;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), 100u) << line;
}

TEST_F(ClientModels, GetLeavesOutWhatTheJobDoesNotHave) {
  fake.service.add_job(job("job-2", v1::RUNNING));
  const Result r = run({"get", "job-2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("Kept"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("By class"), std::string::npos) << r.out;
}

// ---- download

TEST_F(ClientModels, DownloadWritesExactlyTheBytesAndSaysWhatItWrote) {
  const fs::path file = dir / "model.ckpt";
  const Result r = run({"download", "job-1", "-o", file.string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "wrote " + file.string() + ": job-1 step 200 (final) as a Prelude checkpoint, 9.9 KiB (10123 bytes)\n");
  EXPECT_EQ(read_file(file), bytes);
  EXPECT_EQ(files_in(dir), std::vector<std::string>{"model.ckpt"}) << "no temporary file left";
  const auto downloads = fake.service.record().downloads;
  ASSERT_EQ(downloads.size(), 1u);
  EXPECT_EQ(downloads[0].job_id(), "job-1");
  EXPECT_EQ(downloads[0].checkpoint(), "") << "no --checkpoint: the coordinator's default";
  EXPECT_EQ(downloads[0].format(), v1::DownloadModelRequest::PRELUDE);
}

TEST_F(ClientModels, DownloadAsksForTheCheckpointAndFormatGiven) {
  const fs::path file = dir / "model.onnx";
  const Result r = run({"download", "job-1", "--checkpoint", "0100", "--format", "onnx", "-o", file.string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "wrote " + file.string() + ": job-1 step 100 as ONNX, 9.9 KiB (10123 bytes)\n");
  EXPECT_EQ(read_file(file), bytes);
  const auto downloads = fake.service.record().downloads;
  ASSERT_EQ(downloads.size(), 1u);
  EXPECT_EQ(downloads[0].checkpoint(), "100");
  EXPECT_EQ(downloads[0].format(), v1::DownloadModelRequest::ONNX);
  EXPECT_EQ(run({"download", "job-1", "--checkpoint", "latest", "-o", file.string()}).code, 0);
  EXPECT_EQ(fake.service.record().downloads.back().checkpoint(), "latest");
}

TEST_F(ClientModels, DownloadOfAnEmptyModelWritesAnEmptyFile) {
  fake.service.models["job-1"] = "";
  const fs::path file = dir / "empty.ckpt";
  const Result r = run({"download", "job-1", "-o", file.string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(file));
  EXPECT_EQ(fs::file_size(file), 0u);
}

TEST_F(ClientModels, DownloadWithABadChecksumLeavesNoFileAndExits3) {
  fake.service.announced_sha256 = std::string(64, 'f');
  expect_failed_download_leaves_nothing("DATA_LOSS: the model of job-1 arrived damaged: its SHA-256 is " +
                                        sha256_hex(bytes) + ", the coordinator announced " + std::string(64, 'f'));
}

TEST_F(ClientModels, DownloadOfAShortStreamLeavesNoFileAndExits3) {
  fake.service.cut_download_after = 4500;
  expect_failed_download_leaves_nothing(
      "DATA_LOSS: the model of job-1 arrived short: the stream ended after 4500 of 10123 bytes");
}

TEST_F(ClientModels, DownloadOfABrokenStreamLeavesNoFileAndExits3WithItsError) {
  fake.service.cut_download_after = 3000;
  fake.service.cut_download_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is restarting");
  expect_failed_download_leaves_nothing(
      "UNAVAILABLE: the model stream of job-1 broke after 3000 of 10123 bytes (the coordinator is restarting)");
}

TEST_F(ClientModels, DownloadLongerThanAnnouncedLeavesNoFileAndExits3) {
  fake.service.announced_bytes = 5000;
  expect_failed_download_leaves_nothing("DATA_LOSS: the model of job-1 arrived longer than the 5000 bytes announced");
}

TEST_F(ClientModels, DownloadWithoutAChecksumLeavesNoFileAndExits3) {
  fake.service.announced_sha256 = "not-a-digest";
  expect_failed_download_leaves_nothing(
      "DATA_LOSS: the model of job-1 cannot be checked: the coordinator announced 10123 bytes and the SHA-256 "
      "'not-a-digest'");
}

TEST_F(ClientModels, AFailedDownloadLeavesAnExistingFileAsItWas) {
  const fs::path file = dir / "model.ckpt";
  std::ofstream(file) << "the model of yesterday";
  fake.service.announced_sha256 = std::string(64, '0');
  const Result r = run({"download", "job-1", "-o", file.string()});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(read_file(file), "the model of yesterday");
  EXPECT_EQ(files_in(dir), std::vector<std::string>{"model.ckpt"});
}

TEST_F(ClientModels, DownloadToStdoutWritesTheBytesThereAndTheNoteToStderr) {
  const Result r = run({"download", "job-1", "-o", "-"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, bytes);
  EXPECT_EQ(r.err, "wrote standard output: job-1 step 200 (final) as a Prelude checkpoint, 9.9 KiB (10123 bytes)\n");
}

TEST_F(ClientModels, DownloadToStdoutWritesNothingWhenTheModelDoesNotMatch) {
  fake.service.cut_download_after = 2000;
  const Result r = run({"download", "job-1", "-o", "-"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "") << "not the first 2000 bytes either";
  EXPECT_EQ(r.err,
            "prelude: DATA_LOSS: the model of job-1 arrived short: the stream ended after 2000 of 10123 bytes; "
            "nothing was written to standard output\n");
}

TEST_F(ClientModels, DownloadOfAnUnknownJobOrCheckpointIsExit3WithTheCoordinatorsMessage) {
  fake.service.add_job(job("job-2", v1::RUNNING));
  const fs::path file = dir / "model.ckpt";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"download", "job-404"}, "prelude: NOT_FOUND: job-404: no such job\n"},
      {{"download", "job-2"}, "prelude: NOT_FOUND: job-2 has no checkpoints\n"},
      {{"download", "job-1", "--checkpoint", "150"},
       "prelude: NOT_FOUND: job-1: no checkpoint '150'; kept: step 50, step 100, step 200 (final)\n"},
  };
  for (auto [args, message] : cases) {
    args.insert(args.end(), {"-o", file.string()});
    const Result r = run(args);
    EXPECT_EQ(r.code, 3) << ::testing::PrintToString(args);
    EXPECT_EQ(r.err, message);
    EXPECT_EQ(files_in(dir), std::vector<std::string>{}) << ::testing::PrintToString(args);
  }
}

TEST_F(ClientModels, DownloadUsageErrorsAreExit2WithoutACall) {
  const std::string file = (dir / "model.ckpt").string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"download", "job-1"}, "prelude: download: missing -o FILE\n"},
      {{"download", "job-1", "-o", ""}, "prelude: -o: needs a file name, or - for standard output\n"},
      {{"download", "job-1", "-o", file, "--checkpoint", "best"},
       "prelude: --checkpoint: must be final, latest or a step number, got 'best'\n"},
      {{"download", "job-1", "-o", file, "--checkpoint", "-3"},
       "prelude: --checkpoint: must be final, latest or a step number, got '-3'\n"},
      {{"download", "job-1", "-o", file, "--format", "pt"},
       "prelude: --format: must be one of prelude, onnx, got 'pt'\n"},
      {{"download", "sweep-1", "-o", file},
       "prelude: ID: download takes a job id, not a sweep id ('sweep-1'); `prelude get sweep-1` lists its jobs\n"},
      {{"checkpoints", "job-1", "--format", "csv"}, "prelude: --format: must be one of table, json, got 'csv'\n"},
      {{"delete", "sweep-1"},
       "prelude: ID: delete takes a job id, not a sweep id ('sweep-1'); `prelude get sweep-1` lists its jobs\n"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run(args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(args);
    EXPECT_EQ(r.err.rfind(message, 0), 0u) << ::testing::PrintToString(args) << " -> " << r.err;
    EXPECT_NE(r.err.find("--help` for usage"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_EQ(fake.service.record().calls, 0);
}

TEST_F(ClientModels, DownloadToAFileThatCannotBeWrittenIsExit2NamingItWithoutACall) {
  const std::string in_no_dir = (dir / "no-such-dir" / "model.ckpt").string();
  Result r = run({"download", "job-1", "-o", in_no_dir});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "prelude: " + in_no_dir + ": cannot write: No such file or directory\n");
  r = run({"download", "job-1", "-o", dir.string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "prelude: " + dir.string() + ": is a directory; give the file to write\n");
  EXPECT_EQ(fake.service.record().calls, 0);
}

TEST_F(ClientModels, DownloadRefusesToWriteAModelToATerminal) {
  live = true;
  const Result r = run({"download", "job-1", "-o", "-"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("prelude: -o -: standard output is a terminal; redirect it", 0), 0u) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(fake.service.record().calls, 0);
}

TEST_F(ClientModels, DownloadHelpShowsOAsRequired) {
  const Result r = run_raw({"download", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("usage: prelude download ID [--checkpoint WHICH] [--format FORMAT] -o FILE\n", 0), 0u)
      << r.out;
}

// ---- delete

TEST_F(ClientModels, DeletePrintsDeletedAndTheJobIsGone) {
  const Result r = run({"delete", "job-1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted job-1\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(fake.service.record().deleted, std::vector<std::string>{"job-1"});
  const Result get = run({"get", "job-1"});
  EXPECT_EQ(get.code, 3);
  EXPECT_EQ(get.err, "prelude: NOT_FOUND: job-1: no such job\n");
}

TEST_F(ClientModels, DeleteOfAJobThatHasNotEndedIsExit3FailedPrecondition) {
  fake.service.add_job(job("job-2", v1::RUNNING));
  const Result r = run({"delete", "job-2"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "prelude: FAILED_PRECONDITION: job-2 is RUNNING: only a job that has ended can be deleted (cancel it "
            "first)\n");
  EXPECT_TRUE(fake.service.record().deleted.empty());
  EXPECT_EQ(run({"get", "job-2"}).code, 0) << "still there";
}

TEST_F(ClientModels, DeleteOfAnUnknownJobIsExit3NotFound) {
  const Result r = run({"delete", "job-404"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "prelude: NOT_FOUND: job-404: no such job\n");
}

}  // namespace
}  // namespace prelude::client
