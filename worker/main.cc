// prelude-worker: trains Prelude jobs.
//
//   prelude-worker run JOB.json [--data-root DIR] [--threads N] [--quiet]
//   mpirun -np N prelude-worker run JOB.json       (data parallel over N ranks)
//   mpirun -np N prelude-worker serve --coordinator ADDR   (a pool; see serve.cc)
//
// Prints one JSON object per line on stdout (events: diagnostics, step, epoch,
// summary; only rank 0 under mpirun) and human-readable progress on stderr. Exit
// codes: 0 success, 1 the training failed (diverged, desync, internal error), 2 bad
// input (usage, job file, data). Under mpirun a rank that fails ends every rank
// (MPI_Abort with that code) after printing "rank R: <cause>".
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "artifacts/checkpoint_file.h"
#include "common/flags.h"
#include "engine/comm.h"
#include "common/errors.h"
#include "spec/job_spec.h"
#include "engine/trainer.h"
#include "serve.h"
#include "worker/model_commands.h"

namespace {

using prelude::FlagReader;

const std::vector<prelude::FlagSpec> kRunFlags = {
    {"--data-root", "DIR", "where data sets live (default $PRELUDE_DATA_ROOT or /usr/share/datasets)"},
    {"--threads", "N", "compute threads (default: OMP_NUM_THREADS or all cores)"},
    {"--quiet", "", "no progress on stderr"},
    {"--checkpoint-dir", "DIR",
     "write DIR/step-N.ckpt at epoch ends (and every checkpoint.everySteps), DIR/final.ckpt last"},
    {"--resume", "CKPT", "continue from a checkpoint of this job (epochs and maxSteps may grow)"},
    {"--init-from", "CKPT", "start from a checkpoint's weights and slopes (same model; fine-tuning)"},
};

std::string usage() {
  return "usage: prelude-worker run JOB.json [--data-root DIR] [--threads N] [--quiet]\n"
         "                          [--checkpoint-dir DIR] [--resume CKPT | --init-from CKPT]\n"
         "       prelude-worker export|eval|predict CKPT ...  (see export --help)\n"
         "       prelude-worker serve [--coordinator ADDR] [--token-file F] ...  (see serve --help)\n"
         "\n"
         "Trains the job described by JOB.json (the JSON form of prelude.v1.JobSpec).\n" +
         prelude::flag_list(kRunFlags) +
         "stdout: one JSON event per line; exit 0 ok, 1 training failed, 2 bad input.\n";
}

class CliSink : public prelude::EventSink {
 public:
  explicit CliSink(bool quiet) : quiet_(quiet) {}
  // DIR/step-N.ckpt, or DIR/final.ckpt after the last step; written atomically.
  void save(const std::string& dir, const prelude::v1::Checkpoint& c, bool final) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string path =
        dir + "/" + (final ? std::string("final") : "step-" + std::to_string(c.progress().step())) + ".ckpt";
    const std::string bytes = prelude::encode_checkpoint(c);
    prelude::write_file_atomically(path, bytes);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    on_progress("checkpoint " + path + " (" + std::to_string(bytes.size() >> 10) + " KiB, " +
                std::to_string(static_cast<int>(ms)) + " ms)");
  }
  void on_event(const prelude::v1::TrainingEvent& e) override {
    std::fputs(prelude::event_to_json(e).c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  void on_progress(const std::string& line) override {
    if (!quiet_) std::fprintf(stderr, "%s\n", line.c_str());
  }

 private:
  bool quiet_;
};

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "prelude-worker: %s\n%s", msg.c_str(), usage().c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("missing command");
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  if (cmd == "serve") return prelude::serve_main(argc - 2, argv + 2);
  if (cmd == "export") return prelude::export_main(argc - 2, argv + 2);
  if (cmd == "eval") return prelude::eval_main(argc - 2, argv + 2);
  if (cmd == "predict") return prelude::predict_main(argc - 2, argv + 2);
  if (cmd != "run") return usage_error("unknown command '" + cmd + "'");

  prelude::RunOptions options;
  if (const char* root = std::getenv("PRELUDE_DATA_ROOT")) options.data_root = root;
  std::string job_path, checkpoint_dir, resume_path, init_path;
  bool quiet = false;
  try {
    FlagReader reader({argv + 2, argv + argc}, kRunFlags);
    while (const auto item = reader.next()) {
      switch (item->kind) {
        case FlagReader::Item::kHelp:
          std::fputs(usage().c_str(), stdout);
          return 0;
        case FlagReader::Item::kUnknown:
          return usage_error("unknown option '" + item->text + "'");
        case FlagReader::Item::kArgument:
          if (!job_path.empty()) return usage_error("more than one job file given");
          job_path = item->text;
          break;
        case FlagReader::Item::kFlag:  // given twice: the last one counts
          if (item->text == "--data-root") options.data_root = item->value;
          if (item->text == "--threads") omp_set_num_threads(prelude::parse_threads(item->value));
          if (item->text == "--quiet") quiet = true;
          if (item->text == "--checkpoint-dir") checkpoint_dir = item->value;
          if (item->text == "--resume") resume_path = item->value;
          if (item->text == "--init-from") init_path = item->value;
          break;
      }
    }
  } catch (const prelude::UserError& e) {
    return usage_error(e.what());
  }
  if (job_path.empty()) return usage_error("missing JOB.json");
  if (!resume_path.empty() && !init_path.empty()) return usage_error("--resume and --init-from exclude each other");

  CliSink sink(quiet);
  prelude::Communicator& comm = prelude::Communicator::world();
  options.comm = &comm;
  // One rank's failure must not leave the others waiting in a collective: with
  // several ranks every error ends the whole job through MPI_Abort.
  auto fail = [&](const std::string& message, int code) {
    if (comm.size() > 1) comm.abort("prelude-worker: " + message, code);
    std::fprintf(stderr, "prelude-worker: %s\n", message.c_str());
    return code;
  };
  try {
    const auto spec = prelude::load_and_check_job(job_path);
    if (!checkpoint_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(checkpoint_dir, ec);
      if (ec) throw prelude::user_error(checkpoint_dir, "cannot create: " + ec.message());
      options.on_checkpoint = [&](const prelude::v1::Checkpoint& c, bool final) { sink.save(checkpoint_dir, c, final); };
    }
    // Rank 0 reads the checkpoint; the trainer hands its state to the other ranks.
    if (!resume_path.empty())
      options.resume_from = [&] { return prelude::read_checkpoint_file(resume_path); };
    options.resume_source = resume_path;
    if (!init_path.empty()) options.init_from = [&] { return prelude::read_checkpoint_file(init_path); };
    options.init_source = init_path;
    prelude::run_training(spec, options, sink);
  } catch (const prelude::UserError& e) {
    return fail(std::string("error: ") + e.what(), 2);
  } catch (const prelude::DivergedError& e) {
    return fail(e.what(), 1);
  } catch (const prelude::StalledError& e) {
    return fail(e.what(), 1);
  } catch (const prelude::DesyncError& e) {
    return fail(e.what(), 1);
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what(), 1);
  }
  return 0;
}
