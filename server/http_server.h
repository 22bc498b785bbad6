// The coordinator's HTTP side (--http): GET /metrics in the Prometheus text format and
// the web dashboard (its pages, and its JSON API under /api/), behind the same tokens as
// the gRPC API and in TLS when the coordinator serves TLS. cpp-httplib does the HTTP;
// what it serves comes from a function (Metrics::exposition) and the Dashboard.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace prelude::server {

class Authenticator;
class Dashboard;

struct HttpOptions {
  std::string address;  // "host:port" ("[::1]:port"); port 0 picks one
  // TLS when `cert` is set: the coordinator's certificate and key (PEM files, already
  // checked by the gRPC side); with `client_ca`, client certificates are required.
  std::string cert, key, client_ca;
  // Who may scrape: with tokens required, admin and pool tokens (a user's is refused
  // 403, none or an unknown one 401). Null: anyone.
  const Authenticator* auth = nullptr;
  // The dashboard: its pages (no token needed: they hold no data) and /api/* (a user's
  // or an admin's token as `Authorization: Bearer`; a pool's is refused 403). Null: none.
  const Dashboard* dashboard = nullptr;
};

class HttpServer {
 public:
  // Binds and starts serving on a thread of its own. Throws UserError naming --http and
  // the address when it cannot.
  HttpServer(const HttpOptions& options, std::function<std::string()> metrics);
  // Stops serving and joins the thread.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};  // the serving loop has returned
  int port_ = 0;
};

}  // namespace prelude::server
