// What the tests of `prelude` commands share: running `prelude` in-process against
// a fake coordinator (fake_coordinator.h) with string streams, and a job to start from.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli.h"
#include "fake_coordinator.h"
#include "prelude/v1/service.pb.h"

namespace prelude::client::testing {

constexpr int64_t kT0 = 1767323045;  // 2026-01-02T03:04:05Z

struct Result {
  int code = -1;
  std::string out, err;
};

// A job of 2 epochs at batch 64, in `state`.
inline prelude::v1::Job job(const std::string& id, prelude::v1::JobState state) {
  prelude::v1::Job j;
  j.set_job_id(id);
  j.set_state(state);
  j.mutable_spec()->set_name("tiny");
  j.mutable_spec()->mutable_training()->set_epochs(2);
  j.mutable_spec()->mutable_training()->set_batch_size(64);
  j.mutable_create_time()->set_seconds(kT0);
  return j;
}

class ClientCli : public ::testing::Test {
 protected:
  // Runs `prelude --coordinator <fake> ARGS...`.
  Result run(const std::vector<std::string>& args) { return run_raw(with_coordinator(args)); }

  // Runs `prelude ARGS...` as given.
  Result run_raw(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"prelude"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::istringstream in(stdin_text);
    std::ostringstream out, err;
    Console console{in, out, err};
    console.live = live;
    console.columns = 200;
    console.env = [this](const std::string& name) -> std::optional<std::string> {
      const auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    Result r;
    r.code = run_cli(static_cast<int>(all.size()), argv.data(), console);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  std::vector<std::string> with_coordinator(const std::vector<std::string>& args) const {
    std::vector<std::string> all = {"--coordinator", fake.address()};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }

  // A file in the test's temporary directory.
  std::string write_file(const std::string& name, const std::string& text) {
    const std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  FakeCoordinator fake;
  std::map<std::string, std::string> env;  // the client's environment: empty unless a test sets it
  std::string stdin_text;
  bool live = false;
};

}  // namespace prelude::client::testing
