#include "server/metrics.h"

#include <google/protobuf/util/time_util.h>
#include <prometheus/gauge.h>
#include <prometheus/text_serializer.h>

#include <vector>

#include "common/grpc_status.h"

namespace prelude::server {

namespace v1 = prelude::v1;
using google::protobuf::util::TimeUtil;

namespace {

// Calls take from a millisecond (a GetJob) to the length of a stream (WatchJob).
const prometheus::Histogram::BucketBoundaries kRpcBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10,
                                                             30,     60,    300,    1800,  3600};
// Jobs take from seconds (a smoke test) to a day (the paper's runs, on a CPU).
const prometheus::Histogram::BucketBoundaries kJobBuckets = {1,    5,     10,    30,    60,    120,   300,  600,
                                                             1800, 3600,  7200,  14400, 28800, 86400, 172800};

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      rpc_requests_(prometheus::BuildCounter()
                        .Name("prelude_rpc_requests_total")
                        .Help("gRPC calls answered by the coordinator, by method and status code")
                        .Register(*registry_)),
      rpc_seconds_(prometheus::BuildHistogram()
                       .Name("prelude_rpc_duration_seconds")
                       .Help("Time the coordinator took to answer a gRPC call (a stream: until it ended), by method")
                       .Register(*registry_)),
      job_seconds_(prometheus::BuildHistogram()
                       .Name("prelude_job_duration_seconds")
                       .Help("Time from a job's last start to its end, by final state")
                       .Register(*registry_)) {
  // Every final state from the start, so a rate over it is defined before the first job ends.
  for (const char* state : {"SUCCEEDED", "FAILED", "CANCELLED"}) job_seconds_.Add({{"state", state}}, kJobBuckets);
}

void Metrics::observe_rpc(const char* method, grpc::StatusCode code, double seconds) {
  rpc_requests_.Add({{"method", method}, {"code", status_code_name(code)}}).Increment();
  rpc_seconds_.Add({{"method", method}}, kRpcBuckets).Observe(seconds);
}

void Metrics::observe_job_end(const v1::Job& job) {
  if (!job.has_start_time() || !job.has_end_time()) return;
  const double seconds =
      static_cast<double>(TimeUtil::DurationToMilliseconds(job.end_time() - job.start_time())) / 1000.0;
  job_seconds_.Add({{"state", v1::JobState_Name(job.state())}}, kJobBuckets).Observe(seconds < 0 ? 0 : seconds);
}

std::string Metrics::exposition() const {
  std::vector<prometheus::MetricFamily> families;
  if (stats_) {
    // Gauges made afresh at each scrape: a job that stopped running loses its series.
    prometheus::Registry now;
    const ManagerStats s = stats_();
    auto& jobs = prometheus::BuildGauge().Name("prelude_jobs").Help("Jobs by state").Register(now);
    for (const auto& [state, n] : s.jobs) jobs.Add({{"state", v1::JobState_Name(state)}}).Set(static_cast<double>(n));
    prometheus::BuildGauge()
        .Name("prelude_queue_depth")
        .Help("Jobs queued, waiting for a pool")
        .Register(now)
        .Add({})
        .Set(static_cast<double>(s.queue_depth));
    auto& pools = prometheus::BuildGauge().Name("prelude_pools").Help("Registered worker pools, idle or busy with a job")
                      .Register(now);
    pools.Add({{"state", "idle"}}).Set(s.pools_idle);
    pools.Add({{"state", "busy"}}).Set(s.pools_busy);
    auto& speed = prometheus::BuildGauge()
                      .Name("prelude_training_images_per_second")
                      .Help("Training images per second of each running job, from its latest step event")
                      .Register(now);
    for (const auto& [id, rate] : s.images_per_second) speed.Add({{"job_id", id}}).Set(rate);
    prometheus::BuildGauge()
        .Name("prelude_checkpoint_bytes")
        .Help("Bytes of the checkpoints and final models the coordinator keeps")
        .Register(now)
        .Add({})
        .Set(static_cast<double>(s.checkpoint_bytes));
    families = now.Collect();
  }
  for (auto& f : registry_->Collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace prelude::server
