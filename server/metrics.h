// The coordinator's Prometheus metrics (/metrics): counters and histograms fed where
// things happen (every RPC through handle(), every job that ends), and gauges read from
// the job manager at each scrape (ManagerStats), so they are never stale. Uses
// prometheus-cpp's registry and text serializer; the HTTP side is server/http_server.h.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>

#include "server/handle.h"
#include "server/job_manager.h"

namespace prelude::server {

class Metrics final : public RpcMetrics {
 public:
  Metrics();

  // Where the gauges come from (JobManager::stats); without it only the counters and
  // histograms are exposed. Set before serving.
  void set_stats(std::function<ManagerStats()> stats) { stats_ = std::move(stats); }

  // prelude_rpc_requests_total{method,code} and prelude_rpc_duration_seconds{method}.
  void observe_rpc(const char* method, grpc::StatusCode code, double seconds) override;
  // prelude_job_duration_seconds{state}: from the job's (last) start to its end. A job
  // that ended without ever starting (cancelled while queued) is not observed.
  void observe_job_end(const prelude::v1::Job& job);

  // The whole exposition, in the Prometheus text format (version 0.0.4).
  std::string exposition() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& rpc_requests_;
  prometheus::Family<prometheus::Histogram>& rpc_seconds_;
  prometheus::Family<prometheus::Histogram>& job_seconds_;
  std::function<ManagerStats()> stats_;
};

}  // namespace prelude::server
