#include "server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>

#include "common/bearer.h"
#include "common/errors.h"
#include "common/status.h"
#include "server/auth.h"
#include "server/dashboard.h"

namespace prelude::server {

namespace {

// "host:port" -> host (brackets of an IPv6 address removed; empty: every address) and port.
std::pair<std::string, int> split_address(const std::string& address) {
  const size_t colon = address.rfind(':');
  const std::string what = "--http " + address + ": ";
  if (colon == std::string::npos) throw UserError(what + "must be HOST:PORT, e.g. 127.0.0.1:8080");
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end || port < 0 || port > 65535)
    throw UserError(what + "the port must be a number from 0 to 65535, got '" + port_text + "'");
  return {host, static_cast<int>(port)};
}

// The caller of a request (an admin named "anonymous" without an Authenticator). Throws
// ServiceError: UNAUTHENTICATED without a token or with an unknown one.
Caller caller_of(const Authenticator* auth, const httplib::Request& req) {
  if (!auth) return Caller{};
  // The Authenticator reads gRPC metadata: the header is handed over as such.
  const std::string key = kAuthorizationKey, value = req.get_header_value("Authorization");
  std::multimap<grpc::string_ref, grpc::string_ref> metadata;
  if (req.has_header("Authorization")) metadata.emplace(key, value);
  return auth->authenticate(metadata);
}

// 0 when the request may scrape; else the HTTP status to refuse it with, `why` set.
int refusal(const Authenticator* auth, const httplib::Request& req, std::string* why) {
  try {
    const Caller who = caller_of(auth, req);
    if (who.role == Role::kUser) {
      *why = "the token of " + who.name + " is a user's: only admin and pool tokens may read the metrics";
      return 403;
    }
    return 0;
  } catch (const ServiceError& e) {
    *why = e.what();
    return e.code() == ErrorCode::kUnauthenticated ? 401 : 403;
  }
}

void send(const HttpReply& reply, httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [name, value] : reply.headers) res.set_header(name, value);
  res.set_content(reply.body, reply.content_type);
}

// The entity tag of a body: FNV-1a over its bytes (a change detector, not a secret).
std::string entity_tag(const std::string& body) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) h = (h ^ c) * 1099511628211ull;
  char tag[24];
  std::snprintf(tag, sizeof tag, "\"%016llx\"", static_cast<unsigned long long>(h));
  return tag;
}

// An API answer the pages poll every few seconds, tagged (the dashboard has the browser
// revalidate it on every poll): a poll whose answer has not changed since the browser's
// copy (an ended sweep of 1000 jobs, an idle queue) costs a 304 without a body instead of
// the whole answer again.
void send_polled(const HttpReply& reply, const httplib::Request& req, httplib::Response& res) {
  if (reply.status != 200) return send(reply, res);
  const std::string tag = entity_tag(reply.body);
  res.set_header("ETag", tag);
  if (req.get_header_value("If-None-Match") == tag) {
    for (const auto& [name, value] : reply.headers) res.set_header(name, value);
    res.status = 304;
    return;
  }
  send(reply, res);
}

// The dashboard's routes: its pages, and /api/* for a client's token.
void add_dashboard(httplib::Server& server, const Dashboard& dashboard, const Authenticator* auth) {
  for (const DashboardAsset* asset : Dashboard::assets()) {
    const auto serve = [asset](const httplib::Request&, httplib::Response& res) {
      // Scripts from this origin only: a job name shown in a page can never run as code.
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; frame-ancestors 'none'");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Cache-Control", "no-cache");
      res.set_content(asset->data, asset->size, asset->content_type);
    };
    server.Get(asset->path, serve);
    if (std::string(asset->path) == "/index.html") server.Get("/", serve);
  }
  server.Get("/api/.*", [&dashboard, auth](const httplib::Request& req, httplib::Response& res) {
    Caller who;
    try {
      who = caller_of(auth, req);
    } catch (const ServiceError& e) {
      HttpReply reply = Dashboard::error(e.code(), e.what());
      // No WWW-Authenticate challenge: a browser would answer it with its own login box.
      send(reply, res);
      return;
    }
    if (who.role == Role::kPool) {
      send(Dashboard::error(ErrorCode::kPermissionDenied,
                            "the token of " + who.name + " is a worker pool's: the dashboard takes user and admin tokens"),
           res);
      return;
    }
    std::map<std::string, std::string> query;
    for (const auto& [name, value] : req.params) query.emplace(name, value);  // the first of a repeated one
    send_polled(dashboard.api(req.path, query, who), req, res);
  });
}

}  // namespace

HttpServer::HttpServer(const HttpOptions& options, std::function<std::string()> metrics) {
  const auto [host, port] = split_address(options.address);
  if (!options.cert.empty()) {
    auto tls = std::make_unique<httplib::SSLServer>(options.cert.c_str(), options.key.c_str(),
                                                    options.client_ca.empty() ? nullptr : options.client_ca.c_str());
    if (!tls->is_valid())
      throw UserError("--http " + options.address + ": cannot serve TLS with " + options.cert + " and " + options.key);
    server_ = std::move(tls);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  const Authenticator* auth = options.auth;
  server_->Get("/metrics", [auth, metrics](const httplib::Request& req, httplib::Response& res) {
    std::string why;
    if (const int status = refusal(auth, req, &why)) {
      res.status = status;
      if (status == 401) res.set_header("WWW-Authenticate", "Bearer");
      res.set_content(why + "\n", "text/plain; charset=utf-8");
      return;
    }
    try {
      res.set_content(metrics(), "text/plain; version=0.0.4; charset=utf-8");
    } catch (const std::exception& e) {
      res.status = 500;
      res.set_content(std::string("cannot gather the metrics: ") + e.what() + "\n", "text/plain; charset=utf-8");
    }
  });
  if (options.dashboard) add_dashboard(*server_, *options.dashboard, auth);
  // httplib's default is SO_REUSEPORT, which lets a second coordinator bind the same port
  // and share its scrapes unnoticed: a port in use must be an error here.
  server_->set_socket_options([](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  port_ = port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (port_ <= 0) throw UserError("--http " + options.address + ": cannot listen there (in use, or not this host's)");
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    stopped_ = true;
  });
  // Serving before returning: a stop() that came before the loop started would be lost
  // and the destructor would wait forever.
  while (!server_->is_running() && !stopped_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

HttpServer::~HttpServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace prelude::server
