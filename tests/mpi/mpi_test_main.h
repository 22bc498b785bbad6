// The main of a gtest program run under mpirun: every rank runs the tests; rank 0
// prints gtest's report and the others print only their failures, each with its rank;
// the program fails on every rank when any rank failed.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "engine/comm.h"

namespace prelude::testutil {

// Prints one rank's failures, prefixed by its rank, in place of gtest's report (which
// only rank 0 prints, to keep one copy of it). The test's name is kept from
// OnTestStart: gtest holds its own lock while it reports a result.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestStart(const ::testing::TestInfo& test) override {
    test_ = std::string(test.test_suite_name()) + "." + test.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "rank %d: %s: %s:%d: %s\n", rank_, test_.c_str(),
                 result.file_name() ? result.file_name() : "?", result.line_number(), result.message());
  }

 private:
  int rank_;
  std::string test_;
};

// Runs every test on every rank of `world` (InitGoogleTest already called);
// `program` names the executable in the summary of failed ranks.
inline int run_tests_on_every_rank(Communicator& world, const char* program) {
  if (!world.is_root()) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(world.rank()));
  }
  double failed_ranks = RUN_ALL_TESTS() != 0 ? 1 : 0;
  world.allreduce_sum(&failed_ranks, 1);
  if (world.is_root() && failed_ranks > 0)
    std::fprintf(stderr, "%s: %g of %d rank(s) had failures\n", program, failed_ranks, world.size());
  return failed_ranks > 0 ? 1 : 0;
}

}  // namespace prelude::testutil
