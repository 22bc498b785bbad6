// Communicator's collectives against hand computations, and the gradient buckets'
// plan (gradient_reducer.h), at any number of ranks:
// ctest runs this program alone (no mpirun) and under mpirun with 2 and 3 ranks.
//
// It has its own main: MPI starts before the tests, every rank runs every test, and
// the failure count is summed over the ranks at the end, so an assertion that fails
// on any rank fails the program on every rank (and mpirun exits non-zero). Tests
// check with EXPECT_* after their collectives rather than ASSERT_* between them: a
// rank that returned early would leave the others waiting in the next collective.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <chrono>
#include <vector>

#include "engine/comm.h"
#include "engine/context.h"
#include "engine/gradient_reducer.h"
#include "spec/job_spec.h"
#include "engine/init.h"
#include "engine/model.h"
#include "engine/params.h"
#include "mpi_test_main.h"

using namespace prelude;

namespace {

Communicator* world = nullptr;
int mpi_calls = 0;  // see the MPI_* definitions below

// Expects got[i] == want(i) for every i, reporting how many differ and the first,
// so a wrong million-float buffer gives one failure message instead of a million.
template <typename T, typename Want>
void expect_all_eq(const std::vector<T>& got, Want want, const std::string& what) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want(i) && bad++ == 0) first = i;
  EXPECT_EQ(bad, 0u) << what << ": first mismatch at " << first << ": got " << got[first] << ", want "
                     << want(first);
}

// A ParamStore of plain 1-d parameters of the given sizes, in registration order.
ParamStore store_of(const std::vector<int64_t>& sizes) {
  ParamStore ps;
  for (size_t i = 0; i < sizes.size(); ++i)
    ps.add("p" + std::to_string(i), ParamKind::kWeight, md_of({sizes[i]}, tag::a));
  ps.finalize();
  return ps;
}

// Buckets tile [0, total) exactly once, from the back of the arena to its front,
// each starting and ending on parameter boundaries; all but the last (the front of
// the arena) hold at least the target and less than the target plus one parameter.
void expect_valid_buckets(const ParamStore& ps, const std::vector<Bucket>& buckets, size_t bucket_bytes) {
  const size_t target = bucket_bytes / sizeof(float);
  std::vector<size_t> boundaries{ps.total_floats()};
  size_t largest = 0;
  for (const auto& p : ps.params()) {
    boundaries.push_back(p->offset);
    largest = std::max(largest, p->size);
  }
  auto on_boundary = [&](size_t at) {
    return std::find(boundaries.begin(), boundaries.end(), at) != boundaries.end();
  };
  ASSERT_FALSE(buckets.empty());
  size_t end = ps.total_floats();  // where the next bucket must end
  for (size_t k = 0; k < buckets.size(); ++k) {
    const Bucket& b = buckets[k];
    EXPECT_EQ(b.offset + b.size, end) << "bucket " << k << " does not continue the previous one";
    EXPECT_TRUE(on_boundary(b.offset)) << "bucket " << k << " starts inside a parameter";
    EXPECT_GT(b.size, 0u) << "bucket " << k;
    if (k + 1 < buckets.size()) {
      EXPECT_GE(b.size, target) << "bucket " << k;
      EXPECT_LT(b.size, target + largest) << "bucket " << k;
    }
    end = b.offset;
  }
  EXPECT_EQ(end, 0u) << "the buckets do not reach the front of the arena";
}

// cnn-small after forward and loss on 4 images that differ between ranks (so do
// their gradients): ready for backward.
std::unique_ptr<Network> net_after_forward(int rank) {
  auto spec = parse_job_json(R"({"model":{"preset":"cnn-small","activation":{"kind":"PRELU_CHANNELWISE"}}})", "test");
  apply_defaults(&spec);
  auto net = build_network(expand_model(spec.model(), 10), {4, 1, 28, 28});
  initialize(net->params(), init_options_from(spec.model().init(), 7));
  float* x = net->input_data();
  for (int i = 0; i < 4 * 28 * 28; ++i) x[i] = static_cast<float>(std::sin(0.01 * i + rank));
  const int32_t labels[4] = {rank % 10, 3, 7, 9};
  net->forward();
  net->loss(labels, 4, true, 4.0);
  return net;
}

}  // namespace

// The MPI profiling interface: these stand in for the library's functions, count
// each call the Communicator makes and pass it on (PMPI_*), so a test can check
// that a group of one process makes none.
extern "C" {
int MPI_Bcast(void* buffer, int count, MPI_Datatype type, int root, MPI_Comm comm) {
  ++mpi_calls;
  return PMPI_Bcast(buffer, count, type, root, comm);
}
int MPI_Ibcast(void* buffer, int count, MPI_Datatype type, int root, MPI_Comm comm, MPI_Request* request) {
  ++mpi_calls;
  return PMPI_Ibcast(buffer, count, type, root, comm, request);
}
int MPI_Allreduce(const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  ++mpi_calls;
  return PMPI_Allreduce(send, recv, count, type, op, comm);
}
int MPI_Iallreduce(const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                   MPI_Request* request) {
  ++mpi_calls;
  return PMPI_Iallreduce(send, recv, count, type, op, comm, request);
}
int MPI_Wait(MPI_Request* request, MPI_Status* status) {
  ++mpi_calls;
  return PMPI_Wait(request, status);
}
int MPI_Test(MPI_Request* request, int* flag, MPI_Status* status) {
  ++mpi_calls;
  return PMPI_Test(request, flag, status);
}
}

TEST(Comm, AGroupOfOneMakesNoMpiCall) {
  // The counter sees calls at all: one made directly, on every rank.
  int one = 1;
  int before = mpi_calls;
  MPI_Bcast(&one, 1, MPI_INT, 0, MPI_COMM_WORLD);
  EXPECT_EQ(mpi_calls, before + 1);
  // single_process() on every rank, whatever the world; and the world itself when
  // it is one process (the MPI one here: main forces MPI).
  std::vector<Communicator*> groups = {&Communicator::single_process()};
  if (world->size() == 1) groups.push_back(world);
  for (Communicator* c : groups) {
    EXPECT_EQ(c->size(), 1);
    EXPECT_EQ(c->rank(), 0);
    EXPECT_TRUE(c->is_root());
    // Data that differs between ranks: alone, every collective leaves it as it is.
    const float r = static_cast<float>(world->rank());
    const std::vector<float> f0 = {r + 0.5f, -2.f, 3.f};
    const std::vector<double> d0 = {0.25 * r, 1e15};
    const std::string s0 = "rank " + std::to_string(world->rank());
    std::vector<float> f = f0;
    std::vector<double> d = d0;
    std::string s = s0;
    const uint64_t bytes = c->bytes_reduced();
    before = mpi_calls;
    c->allreduce_sum(f.data(), f.size());
    c->allreduce_sum(d.data(), d.size());
    c->allreduce_mean(f.data(), f.size());
    c->broadcast(f.data(), f.size());
    auto pending = c->start_allreduce_mean(f.data(), f.size());
    c->wait(pending);
    c->broadcast_bytes(&s);
    c->broadcast_bytes_idle(&s);
    EXPECT_TRUE(c->all_equal(world->rank()));
    EXPECT_EQ(mpi_calls, before) << (c == world ? "the world" : "single_process()") << " made MPI calls";
    EXPECT_EQ(c->bytes_reduced(), bytes);
    EXPECT_EQ(f, f0);
    EXPECT_EQ(d, d0);
    EXPECT_EQ(s, s0);
  }
}

TEST(Comm, RanksAreNumberedFromZero) {
  EXPECT_GE(world->size(), 1);
  EXPECT_GE(world->rank(), 0);
  EXPECT_LT(world->rank(), world->size());
  EXPECT_EQ(world->is_root(), world->rank() == 0);
  double ranks[2] = {1, static_cast<double>(world->rank())};
  world->allreduce_sum(ranks, 2);
  EXPECT_EQ(ranks[0], world->size());
  EXPECT_EQ(ranks[1], world->size() * (world->size() - 1) / 2.0);  // every rank counted once
}

TEST(Comm, AllreduceSumOfUnevenFloatBuffersIsExact) {
  const int r = world->rank(), n = world->size();
  for (size_t size : {size_t{1}, size_t{7}, size_t{1000003}}) {
    std::vector<float> v(size);
    for (size_t i = 0; i < size; ++i) v[i] = static_cast<float>((r + 1) * 1000 + i % 997);
    world->allreduce_sum(v.data(), v.size());
    // The sum over ranks of (r+1)*1000 + i%997 is 1000 n(n+1)/2 + n (i%997): small
    // integers, exact in float whatever order MPI adds them in.
    expect_all_eq(v, [&](size_t i) { return static_cast<float>(500 * n * (n + 1) + n * (i % 997)); },
                  "size " + std::to_string(size));
  }
}

TEST(Comm, AllreduceSumOfDoublesIsExact) {
  const int r = world->rank(), n = world->size();
  // Halves and a large offset: exact in double, not in float.
  std::vector<double> v = {0.5 * r, 1.0, 1e15 + r};
  world->allreduce_sum(v.data(), v.size());
  EXPECT_EQ(v[0], 0.25 * n * (n - 1));
  EXPECT_EQ(v[1], n);
  EXPECT_EQ(v[2], 1e15 * n + n * (n - 1) / 2.0);
}

TEST(Comm, AllreduceMeanAveragesOverRanks) {
  const int r = world->rank(), n = world->size();
  std::vector<float> v(1001);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(2 * r + i % 5);
  world->allreduce_mean(v.data(), v.size());
  // The mean of 2r over r = 0..n-1 is n-1.
  for (size_t i = 0; i < v.size(); ++i) EXPECT_FLOAT_EQ(v[i], static_cast<float>(n - 1 + i % 5)) << "i " << i;
}

TEST(Comm, BucketsInFlightAtOnceAverageLikeOneFusedAllreduce) {
  const int r = world->rank(), n = world->size();
  std::vector<float> fused(100003), buckets;
  for (size_t i = 0; i < fused.size(); ++i) fused[i] = static_cast<float>(r * n + i % 5);
  buckets = fused;
  world->allreduce_mean(fused.data(), fused.size());
  // Five uneven buckets, started from the back of the buffer as backward would,
  // all in flight together, then completed in another order than they started.
  const std::vector<std::pair<size_t, size_t>> ranges = {
      {90000, 10003}, {60000, 30000}, {1000, 59000}, {1, 999}, {0, 1}};
  std::vector<Communicator::Pending> pending;
  for (const auto& [offset, size] : ranges) pending.push_back(world->start_allreduce_mean(&buckets[offset], size));
  for (size_t k : {2, 4, 0, 3, 1}) world->wait(pending[k]);
  expect_all_eq(buckets, [&](size_t i) { return fused[i]; }, "bucketed against fused");
  expect_all_eq(fused, [&](size_t i) { return static_cast<float>(n * (n - 1) / 2.0 + i % 5); }, "fused mean");
}

TEST(Comm, BroadcastReplacesEveryOtherRanksDataWithTheRoots) {
  for (int root : {0, world->size() - 1}) {
    std::vector<float> v(1000);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(world->rank() * 10000 + i);
    world->broadcast(v.data(), v.size(), root);
    expect_all_eq(v, [&](size_t i) { return static_cast<float>(root * 10000 + i); },
                  "from root " + std::to_string(root));
  }
}

TEST(Comm, BroadcastBytesSendsLengthAndContent) {
  // Longer and shorter than the others' strings, with a NUL inside, and empty.
  const std::string long_spec = std::string(100000, 'x') + std::string(1, '\0') + "end";
  for (const std::string& sent : {long_spec, std::string("{}"), std::string()}) {
    std::string s = world->is_root() ? sent : "rank " + std::to_string(world->rank()) + std::string(50, '?');
    world->broadcast_bytes(&s);
    EXPECT_EQ(s.size(), sent.size());
    EXPECT_TRUE(s == sent) << "a " << sent.size() << "-byte string arrived altered";
  }
}

TEST(Comm, GatherBytesBringsEveryRanksBytesToTheRootInRankOrder) {
  // Of different lengths (rank 1's empty, a NUL inside), to the first and the last rank.
  const auto bytes_of = [](int rank) {
    return rank == 1 ? std::string() : "rank " + std::to_string(rank) + std::string(1, '\0') + std::string(rank * 1000, 'g');
  };
  for (int root : {0, world->size() - 1}) {
    const std::vector<std::string> all = world->gather_bytes(bytes_of(world->rank()), root);
    if (world->rank() != root) {
      EXPECT_TRUE(all.empty());
      continue;
    }
    ASSERT_EQ(all.size(), static_cast<size_t>(world->size()));
    for (int r = 0; r < world->size(); ++r) EXPECT_TRUE(all[r] == bytes_of(r)) << "rank " << r << "'s bytes, at " << root;
  }
}

TEST(Comm, IdleBroadcastDeliversWhatTheRootSendsLate) {
  // The others wait (sleeping between polls) while the root is still busy, as a
  // pool's ranks wait while rank 0 asks the coordinator for a job.
  std::string s = world->is_root() ? "" : "stale";
  if (world->is_root()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    s = "job bytes " + std::string(5000, 'j');
  }
  world->broadcast_bytes_idle(&s, 0, 5);
  EXPECT_EQ(s, "job bytes " + std::string(5000, 'j'));
  std::string empty = world->is_root() ? "" : "not empty";
  world->broadcast_bytes_idle(&empty);
  EXPECT_EQ(empty, "");
}

TEST(Comm, AllEqualCatchesOneRankPerturbingOneValue) {
  std::vector<float> v(4096, 1.5f);
  EXPECT_TRUE(world->all_equal(checksum_bytes(v.data(), v.size() * sizeof(float))));
  // One ulp of one value on the last rank only: every rank must see the mismatch.
  if (world->rank() == world->size() - 1) v[1234] = std::nextafter(v[1234], 2.f);
  EXPECT_EQ(world->all_equal(checksum_bytes(v.data(), v.size() * sizeof(float))), world->size() == 1);
}

TEST(Comm, ChecksumIsFnv1a64) {
  // Published FNV-1a 64-bit test vectors.
  EXPECT_EQ(checksum_bytes("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(checksum_bytes("a", 1), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(checksum_bytes("foobar", 6), 0x85944171f73967e8ULL);
}

TEST(Comm, BytesReducedCountEveryReduction) {
  // A single process makes no MPI calls, so it counts nothing.
  const uint64_t per_float = world->size() > 1 ? sizeof(float) : 0;
  const uint64_t per_double = world->size() > 1 ? sizeof(double) : 0;
  std::vector<float> f(1000, 1.f);
  std::vector<double> d(10, 1.0);

  uint64_t bytes = world->bytes_reduced();
  world->allreduce_sum(f.data(), f.size());
  EXPECT_EQ(world->bytes_reduced() - bytes, f.size() * per_float);
  bytes = world->bytes_reduced();
  world->allreduce_sum(d.data(), d.size());
  EXPECT_EQ(world->bytes_reduced() - bytes, d.size() * per_double);
  bytes = world->bytes_reduced();
  world->allreduce_mean(f.data(), f.size());
  EXPECT_EQ(world->bytes_reduced() - bytes, f.size() * per_float);
  bytes = world->bytes_reduced();
  auto pending = world->start_allreduce_mean(f.data(), 100);
  world->wait(pending);
  EXPECT_EQ(world->bytes_reduced() - bytes, 100 * per_float);
}

TEST(Buckets, CoverTheArenaOnceFromTheBack) {
  const ParamStore ps = store_of({100, 200, 300, 400, 500, 600});
  const auto b = make_buckets(ps, 800 * sizeof(float));
  // From the back, a bucket closes once it holds 800 floats: 600+500 | 400+300+200 | 100.
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].offset, 1000u);
  EXPECT_EQ(b[0].size, 1100u);
  EXPECT_EQ(b[1].offset, 100u);
  EXPECT_EQ(b[1].size, 900u);
  EXPECT_EQ(b[2].offset, 0u);
  EXPECT_EQ(b[2].size, 100u);
  expect_valid_buckets(ps, b, 800 * sizeof(float));
}

TEST(Buckets, TargetsSmallerOrLargerThanEveryParameter) {
  const ParamStore ps = store_of({3, 1, 4, 1, 5});
  // Smaller than every parameter: one bucket per parameter, last registered first.
  const auto each = make_buckets(ps, 1);
  ASSERT_EQ(each.size(), 5u);
  for (size_t k = 0; k < each.size(); ++k) {
    EXPECT_EQ(each[k].offset, ps.params()[4 - k]->offset);
    EXPECT_EQ(each[k].size, ps.params()[4 - k]->size);
  }
  // Larger than the arena: one bucket, the whole arena.
  const auto whole = make_buckets(ps, 1 << 20);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].offset, 0u);
  EXPECT_EQ(whole[0].size, ps.total_floats());
}

TEST(Buckets, RealNetworkArenaIsSplitTheSameOnEveryRank) {
  auto spec = parse_job_json(R"({"model":{"preset":"cnn-small"}})", "test");
  apply_defaults(&spec);
  const auto net = build_network(expand_model(spec.model(), 10), {2, 1, 28, 28});
  const ParamStore& ps = net->params();
  for (size_t bucket_bytes : {size_t{65536}, size_t{1} << 20}) {
    const auto b = make_buckets(ps, bucket_bytes);
    expect_valid_buckets(ps, b, bucket_bytes);
    EXPECT_TRUE(world->all_equal(checksum_bytes(b.data(), b.size() * sizeof(Bucket))))
        << "ranks split the arena differently at " << bucket_bytes << " bytes";
  }
}

// The reference both reducers are checked against: this rank's own gradients of
// net_after_forward, and their mean over the ranks in f32 by one allreduce.
struct Gradients {
  std::vector<float> own, mean;
};
Gradients reference_gradients(int rank) {
  auto net = net_after_forward(rank);
  net->backward();
  const ParamStore& ps = net->params();
  Gradients g;
  g.own.assign(ps.grads(), ps.grads() + ps.total_floats());
  g.mean = g.own;
  world->allreduce_mean(g.mean.data(), g.mean.size());
  return g;
}

TEST(GradientReducer, FusedAndBucketedGiveTheRanksMeanGradient) {
  const int r = world->rank(), n = world->size();
  const std::vector<float> want = reference_gradients(r).mean;
  float scale = 0;
  for (float g : want) scale = std::max(scale, std::fabs(g));
  EXPECT_GT(scale, 0.f) << "no gradients to reduce";
  for (size_t bucket_bytes : {size_t{0}, size_t{65536}}) {
    auto net = net_after_forward(r);
    GradientReducer reducer(*world, net->params(), bucket_bytes);
    // Alone there is nothing to plan (or reduce).
    EXPECT_EQ(reducer.buckets().size() > 1, n > 1 && bucket_bytes > 0) << bucket_bytes << " bytes";
    reducer.backward_and_reduce(*net);
    // To rounding: at 3 ranks MPI may add a bucket's three parts in another order
    // than the whole arena's.
    const float* got = net->params().grads();
    size_t bad = 0;
    for (size_t i = 0; i < want.size(); ++i) bad += std::fabs(got[i] - want[i]) > 1e-6f * scale;
    EXPECT_EQ(bad, 0u) << "gradients differ from the mean with " << bucket_bytes << "-byte buckets";
    EXPECT_EQ(reducer.bytes_per_step(), n > 1 ? want.size() * sizeof(float) : 0.0);
    if (n > 1)
      EXPECT_GT(reducer.seconds(), 0.0);
    else
      EXPECT_EQ(reducer.seconds(), 0.0);
  }
}

// In bf16 both plans reduce every gradient (weights, biases, PReLU slopes) to the
// ranks' mean within bf16's error, with half the bytes; fused and bucketed give the
// same bits at 2 ranks (one addition per value, whatever the message), and every rank
// ends with the same bits.
TEST(GradientReducer, Bf16FusedAndBucketedGiveTheMeanOnEveryRankAlike) {
  const int r = world->rank(), n = world->size();
  const Gradients reference = reference_gradients(r);
  const std::vector<float>& want = reference.mean;
  const float* own = reference.own.data();
  // Each value's error against the f32 mean is within gamma(2N-1) of the mean of the
  // ranks' magnitudes (test_bf16_reduce.cc), so within gamma(2N-1) of their largest:
  // every rank's magnitudes side by side (a sum of slots only one rank fills), then the max.
  std::vector<float> all(want.size() * n, 0.f);
  for (size_t i = 0; i < want.size(); ++i) all[static_cast<size_t>(r) * want.size() + i] = std::fabs(own[i]);
  world->allreduce_sum(all.data(), all.size());
  std::vector<float> mag_max(want.size(), 0.f);
  for (size_t i = 0; i < want.size(); ++i)
    for (int k = 0; k < n; ++k) mag_max[i] = std::max(mag_max[i], all[k * want.size() + i]);
  const double k = 2.0 * n - 1, gamma = k / 256 / (1 - k / 256);
  std::vector<std::vector<float>> results;
  for (size_t bucket_bytes : {size_t{0}, size_t{65536}}) {
    auto net = net_after_forward(r);
    GradientReducer reducer(*world, net->params(), bucket_bytes, ReducePrecision::kBf16);
    reducer.backward_and_reduce(*net);
    const float* got = net->params().grads();
    size_t bad = 0, first = 0, differ = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      if (std::fabs(got[i] - want[i]) > gamma * mag_max[i] + 1e-30 && bad++ == 0) first = i;
      differ += got[i] != want[i];
    }
    EXPECT_EQ(bad, 0u) << bucket_bytes << "-byte buckets: first outside bf16's bound at " << first << ": got "
                       << got[first] << ", want " << want[first];
    // Alone it is the f32 gradient itself; with ranks, bf16 shows.
    if (n == 1)
      EXPECT_EQ(differ, 0u);
    else
      EXPECT_GT(differ, want.size() / 2) << "not reduced in bf16?";
    EXPECT_EQ(reducer.bytes_per_step(), n > 1 ? want.size() * sizeof(uint16_t) : 0.0);
    EXPECT_TRUE(world->all_equal(checksum_bytes(got, want.size() * sizeof(float))))
        << bucket_bytes << "-byte buckets: the ranks' gradients differ";
    // The slopes are in the arena and reduced with it.
    for (const auto& p : net->params().params())
      if (p->kind == ParamKind::kSlope && n > 1) {
        bool changed = false;
        for (size_t i = p->offset; i < p->offset + p->size; ++i) changed |= got[i] != own[i];
        EXPECT_TRUE(changed) << p->name << ": slope gradients not reduced";
      }
    results.emplace_back(got, got + want.size());
  }
  if (n <= 2) {
    size_t differ = 0;
    for (size_t i = 0; i < want.size(); ++i) differ += results[0][i] != results[1][i];
    EXPECT_EQ(differ, 0u) << "bf16: fused and bucketed differ";
  }
}

int main(int argc, char** argv) {
  world = &Communicator::world(/*force_mpi=*/true);
  ::testing::InitGoogleTest(&argc, argv);
  return prelude::testutil::run_tests_on_every_rank(*world, "test_comm");
}
