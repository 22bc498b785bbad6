// The SQLite store: jobs and their histories round-trip, event queries filter and
// page, a reopened file keeps everything, boots are counted, and a database that
// cannot be opened is an error naming the path.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
namespace v1 = prelude::v1;

v1::Job make_job(const std::string& id, v1::JobState state, const std::string& name) {
  v1::Job job;
  job.set_job_id(id);
  job.set_state(state);
  job.mutable_spec()->set_name(name);
  job.mutable_spec()->mutable_training()->set_batch_size(32);
  job.set_attempts(2);
  job.set_pool_id("pool-1.1");
  job.mutable_create_time()->set_seconds(1700000000);
  set_event_kind(job.mutable_latest_metrics(), v1::TrainingEvent::EPOCH);
  job.mutable_latest_metrics()->set_test_accuracy(0.875);
  return job;
}

v1::JobEvent state_event(const std::string& id, int64_t seq, v1::JobState state, const std::string& reason) {
  v1::JobEvent e;
  e.set_job_id(id);
  e.set_seq(seq);
  e.mutable_time()->set_seconds(1700000000 + seq);
  e.mutable_state_change()->set_state(state);
  e.mutable_state_change()->set_reason(reason);
  return e;
}

v1::JobEvent training_event(const std::string& id, int64_t seq, int step) {
  v1::JobEvent e;
  e.set_job_id(id);
  e.set_seq(seq);
  *e.mutable_training() = step_event(step, 2.0 / step);
  return e;
}

std::vector<int64_t> seqs(const std::vector<v1::JobEvent>& events) {
  std::vector<int64_t> out;
  for (const auto& e : events) out.push_back(e.seq());
  return out;
}

// job-000001: QUEUED(1) RUNNING(2) step(3) step(4) step(5) SUCCEEDED(6);
// job-000002: QUEUED(1), stays queued.
void fill(Store& store) {
  v1::Job a = make_job("job-000001", v1::QUEUED, "first");
  store.save(1, a, {state_event("job-000001", 1, v1::QUEUED, "submitted")});
  v1::Job b = make_job("job-000002", v1::QUEUED, "second");
  store.save(2, b, {state_event("job-000002", 1, v1::QUEUED, "submitted")});
  a.set_state(v1::RUNNING);
  store.save(1, a, {state_event("job-000001", 2, v1::RUNNING, "started")});
  store.save(1, a, {training_event("job-000001", 3, 10), training_event("job-000001", 4, 20),
                    training_event("job-000001", 5, 30)});
  a.set_state(v1::SUCCEEDED);
  store.save(1, a, {state_event("job-000001", 6, v1::SUCCEEDED, "done")});
}

TEST(StoreTest, NewDatabaseHasNoJobs) {
  Store store(":memory:");
  EXPECT_TRUE(store.load_jobs().empty());
  EXPECT_TRUE(store.events("job-000001", 0, false).empty());
}

TEST(StoreTest, SaveAndLoadRoundTripsJobsInCreationOrder) {
  Store store(":memory:");
  fill(store);
  const auto jobs = store.load_jobs();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].number, 1);
  EXPECT_EQ(jobs[0].job.job_id(), "job-000001");
  EXPECT_EQ(jobs[0].job.state(), v1::SUCCEEDED);  // the update replaced the row
  EXPECT_EQ(jobs[0].job.spec().name(), "first");
  EXPECT_EQ(jobs[0].job.spec().training().batch_size(), 32);
  EXPECT_EQ(jobs[0].job.attempts(), 2);
  EXPECT_EQ(jobs[0].job.latest_metrics().test_accuracy(), 0.875);
  EXPECT_EQ(jobs[0].job.create_time().seconds(), 1700000000);
  EXPECT_EQ(jobs[0].last_seq, 6);
  EXPECT_EQ(jobs[1].number, 2);
  EXPECT_EQ(jobs[1].job.job_id(), "job-000002");
  EXPECT_EQ(jobs[1].job.state(), v1::QUEUED);
  EXPECT_EQ(jobs[1].last_seq, 1);
}

TEST(StoreTest, JobWithoutEventsHasLastSeqZero) {
  Store store(":memory:");
  store.save(7, make_job("job-000007", v1::QUEUED, "quiet"), {});
  const auto jobs = store.load_jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].number, 7);
  EXPECT_EQ(jobs[0].last_seq, 0);
}

TEST(StoreTest, EventsRoundTripWithTheirContent) {
  Store store(":memory:");
  fill(store);
  const auto events = store.events("job-000001", 0, false);
  ASSERT_EQ(seqs(events), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(events[0].job_id(), "job-000001");
  ASSERT_TRUE(events[0].has_state_change());
  EXPECT_EQ(events[0].state_change().state(), v1::QUEUED);
  EXPECT_EQ(events[0].state_change().reason(), "submitted");
  EXPECT_EQ(events[0].time().seconds(), 1700000001);
  ASSERT_TRUE(events[3].has_training());
  EXPECT_EQ(event_kind(events[3].training()), v1::TrainingEvent::STEP);
  EXPECT_EQ(events[3].training().step(), 20);
  EXPECT_DOUBLE_EQ(events[3].training().loss(), 0.1);
  ASSERT_TRUE(events[5].has_state_change());
  EXPECT_EQ(events[5].state_change().state(), v1::SUCCEEDED);
  // Histories are per job.
  EXPECT_EQ(seqs(store.events("job-000002", 0, false)), (std::vector<int64_t>{1}));
  EXPECT_TRUE(store.events("job-000099", 0, false).empty());
}

TEST(StoreTest, EventsAfterSeqTrainingOnlyAndLimit) {
  Store store(":memory:");
  fill(store);
  EXPECT_EQ(seqs(store.events("job-000001", 2, false)), (std::vector<int64_t>{3, 4, 5, 6}));
  EXPECT_EQ(seqs(store.events("job-000001", 5, false)), (std::vector<int64_t>{6}));
  EXPECT_TRUE(store.events("job-000001", 6, false).empty());
  EXPECT_TRUE(store.events("job-000001", 100, false).empty());
  // Training only: the state changes are left out.
  EXPECT_EQ(seqs(store.events("job-000001", 0, true)), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(seqs(store.events("job-000001", 3, true)), (std::vector<int64_t>{4, 5}));
  EXPECT_TRUE(store.events("job-000002", 0, true).empty());
  // Limit: the first N after after_seq; 0 means all.
  EXPECT_EQ(seqs(store.events("job-000001", 0, false, 2)), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(seqs(store.events("job-000001", 2, false, 3)), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(seqs(store.events("job-000001", 0, true, 1)), (std::vector<int64_t>{3}));
  EXPECT_EQ(seqs(store.events("job-000001", 0, false, 0)).size(), 6u);
}

TEST(StoreTest, DuplicateEventSeqIsRejectedAndRolledBack) {
  Store store(":memory:");
  fill(store);
  v1::Job a = make_job("job-000001", v1::FAILED, "changed");
  // seq 7 is new, seq 3 already exists: the whole save must fail and change nothing.
  EXPECT_THROW(store.save(1, a, {training_event("job-000001", 7, 70), training_event("job-000001", 3, 30)}),
               std::runtime_error);
  const auto jobs = store.load_jobs();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].job.state(), v1::SUCCEEDED);
  EXPECT_EQ(jobs[0].job.spec().name(), "first");
  EXPECT_EQ(jobs[0].last_seq, 6);
  // The store still works after the failed transaction.
  store.save(1, a, {training_event("job-000001", 7, 70)});
  EXPECT_EQ(store.load_jobs()[0].job.state(), v1::FAILED);
  EXPECT_EQ(store.load_jobs()[0].last_seq, 7);
}

TEST(StoreTest, ReopenedFileKeepsJobsAndEvents) {
  TempDir dir;
  const std::string path = dir.file("prelude.db");
  {
    Store store(path);
    fill(store);
  }
  Store reopened(path);
  const auto jobs = reopened.load_jobs();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].job.job_id(), "job-000001");
  EXPECT_EQ(jobs[0].job.state(), v1::SUCCEEDED);
  EXPECT_EQ(jobs[0].last_seq, 6);
  EXPECT_EQ(jobs[1].job.job_id(), "job-000002");
  EXPECT_EQ(jobs[1].job.state(), v1::QUEUED);
  EXPECT_EQ(seqs(reopened.events("job-000001", 0, false)), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(seqs(reopened.events("job-000001", 0, true)), (std::vector<int64_t>{3, 4, 5}));
  // And it goes on from there.
  reopened.save(3, make_job("job-000003", v1::QUEUED, "third"), {state_event("job-000003", 1, v1::QUEUED, "x")});
  EXPECT_EQ(reopened.load_jobs().size(), 3u);
}

// A database written before events had their attempt: on opening, every event gets
// the attempt of the RUNNING state change before it (0 before any), in the column
// and in the message; training_events then picks attempts apart.
TEST(StoreTest, EventsOfAnOlderDatabaseAreGivenTheirAttempts) {
  TempDir dir;
  const std::string path = dir.file("old.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE events(job_id TEXT NOT NULL, seq INTEGER NOT NULL, training INTEGER NOT NULL,"
                           " event BLOB NOT NULL, PRIMARY KEY(job_id, seq)) WITHOUT ROWID",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    std::vector<v1::JobEvent> events = {state_event("job-000001", 1, v1::QUEUED, "submitted"),
                                        state_event("job-000001", 2, v1::RUNNING, "started"),
                                        training_event("job-000001", 3, 5),
                                        state_event("job-000001", 4, v1::QUEUED, "lost"),
                                        state_event("job-000001", 5, v1::RUNNING, "started"),
                                        training_event("job-000001", 6, 5),
                                        training_event("job-000001", 7, 10)};
    events[1].mutable_state_change()->set_attempt(1);
    events[4].mutable_state_change()->set_attempt(2);
    sqlite3_stmt* put = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO events VALUES(?, ?, ?, ?)", -1, &put, nullptr), SQLITE_OK);
    for (const auto& e : events) {
      const std::string blob = e.SerializeAsString();
      sqlite3_bind_text(put, 1, e.job_id().c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(put, 2, e.seq());
      sqlite3_bind_int64(put, 3, e.has_training() ? 1 : 0);
      sqlite3_bind_blob(put, 4, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
      ASSERT_EQ(sqlite3_step(put), SQLITE_DONE);
      sqlite3_reset(put);
    }
    sqlite3_finalize(put);
    sqlite3_close(db);
  }
  Store store(path);
  std::vector<int> attempts;
  for (const auto& e : store.events("job-000001", 0, false)) attempts.push_back(e.attempt());
  EXPECT_EQ(attempts, (std::vector<int>{0, 1, 1, 1, 2, 2, 2}));
  bool more = true;
  EXPECT_EQ(seqs(store.training_events("job-000001", 1, 0, 100, 1 << 20, &more)), (std::vector<int64_t>{3}));
  EXPECT_FALSE(more);
  EXPECT_EQ(seqs(store.training_events("job-000001", 2, 0, 100, 1 << 20, &more)), (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(seqs(store.training_events("job-000001", Store::kAllAttempts, 0, 100, 1 << 20, &more)),
            (std::vector<int64_t>{3, 6, 7}));
  EXPECT_EQ(seqs(store.training_events("job-000001", Store::kAllAttempts, 3, 1, 1 << 20, &more)),
            (std::vector<int64_t>{6}));
  EXPECT_TRUE(more);
  // A page also ends at max_bytes, but holds at least one event.
  EXPECT_EQ(seqs(store.training_events("job-000001", Store::kAllAttempts, 0, 100, 1, &more)),
            (std::vector<int64_t>{3}));
  EXPECT_TRUE(more);
}

TEST(StoreTest, NextBootCountsStartsAndSurvivesReopen) {
  TempDir dir;
  const std::string path = dir.file("boots.db");
  {
    Store store(path);
    EXPECT_EQ(store.next_boot(), 1);
    EXPECT_EQ(store.next_boot(), 2);
  }
  {
    Store store(path);
    EXPECT_EQ(store.next_boot(), 3);
  }
  Store memory(":memory:");
  EXPECT_EQ(memory.next_boot(), 1);
}

TEST(StoreTest, UnopenablePathThrowsNamingThePath) {
  TempDir dir;
  // A directory that does not exist (unwritable even for root).
  const std::string missing = dir.file("no-such-dir/prelude.db");
  try {
    Store store(missing);
    ADD_FAILURE() << "opened " << missing;
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), missing)) << e.what();
  }
  // A "directory" that is a regular file.
  const std::string file = dir.file("plain-file");
  std::ofstream(file) << "not a directory\n";
  const std::string below_file = file + "/prelude.db";
  try {
    Store store(below_file);
    ADD_FAILURE() << "opened " << below_file;
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), below_file)) << e.what();
  }
}

TEST(StoreTest, FileThatIsNotADatabaseThrowsNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("garbage.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 512; ++i) out << "this is not an SQLite database. ";
  }
  try {
    Store store(path);
    ADD_FAILURE() << "opened " << path;
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
  }
}

}  // namespace
}  // namespace prelude::server
