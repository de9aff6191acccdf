// NodeSession: keeps one data-plane node's tables equal to what stratusd
// wants, on a thread of its own so that a slow or dead node never holds up
// the others (SPEC.md §5).
//
// Each round: GetState; if the node is the one we last programmed (same
// instance_id, the generation and digest we last saw acknowledged), push only
// the difference between what it holds and the desired tables (a delta on
// base_generation = its generation); otherwise (first contact, a restarted
// data plane, a failed or refused transaction, a digest we did not expect)
// push everything (full = true). Every transaction carries expect_digest, the
// digest stratusd computed, so a data plane that would end up with other
// tables refuses it. Failures retry with exponential back-off (capped); an
// idle session polls GetState to notice a restart.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/tables.h"
#include "control/client.h"
#include "control/metrics.h"

namespace stratus::control {

struct SessionOptions {
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{10000};
  std::chrono::milliseconds poll_interval{5000};  // GetState when idle (restart detection)
  std::size_t chunk_bytes = 1 << 20;              // Apply message size
};

// What stratusd wants a node to hold.
struct DesiredTables {
  std::shared_ptr<const Tables> tables;
  std::uint64_t digest = 0;
  std::uint64_t generation = 0;  // stratusd's desired-state generation
  // Optional: the operations from `base` to `tables` (api::diff), which the
  // controller has from the walk that updated the digest. The session sends
  // them when `base` is the very tables the node acknowledged last, and
  // diffs itself otherwise.
  std::shared_ptr<const Tables> base;
  std::shared_ptr<const std::vector<pb::TxnOp>> ops;
};

// A snapshot of a session, for the operator API.
struct SessionStatus {
  std::string node;
  std::string endpoint;
  SyncState state = SyncState::kConnecting;
  std::uint64_t node_generation = 0;  // last generation the node reported
  std::uint64_t node_digest = 0;
  std::uint64_t expected_digest = 0;  // digest of the desired tables
  std::uint64_t desired_generation = 0;
  std::string instance_id;
  std::string last_error;
  std::uint64_t full_syncs = 0;
  std::uint64_t deltas = 0;
  std::uint64_t failures = 0;
  std::uint64_t last_push_ops = 0;
  double last_push_ms = 0;
  std::chrono::system_clock::time_point last_sync{};  // zero: never
};

class NodeSession {
 public:
  NodeSession(std::string node, std::string endpoint, ClientFactory factory, Metrics *metrics,
              SessionOptions options = {});
  ~NodeSession();  // stop()
  NodeSession(const NodeSession &) = delete;
  NodeSession &operator=(const NodeSession &) = delete;

  void start();
  // Cancels a call in progress and joins the thread.
  void stop();

  const std::string &node() const { return node_; }
  const std::string &endpoint() const { return endpoint_; }

  void set_desired(DesiredTables desired);
  SessionStatus status() const;
  // The tables the node acknowledged last (nullptr before the first sync).
  std::shared_ptr<const Tables> acked_tables() const;

  // Blocks until the node holds the desired generation (true), or the timeout.
  bool wait_in_sync(std::chrono::milliseconds timeout) const;

  // Queries on a client of their own (not the sync thread's), serialised.
  grpc::Status explain(const pb::ExplainRequest &req, pb::ExplainReply *out);
  grpc::Status dump_flows(const pb::FlowsRequest &req, std::vector<pb::Flow> *out);

 private:
  void run();
  // One round: returns true when the node is in sync (or nothing to do).
  bool sync_once();
  void set_state(SyncState s, const std::string &error = {});
  void fail(const std::string &what, const grpc::Status &st);

  const std::string node_;
  const std::string endpoint_;
  const ClientFactory factory_;
  Metrics *const metrics_;
  const SessionOptions options_;

  std::unique_ptr<DataplaneClient> client_;  // the sync thread's

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stop_ = false;
  std::uint64_t desired_version_ = 0;  // bumped by set_desired
  DesiredTables desired_;
  // What the node acknowledged last (valid while `synced_`).
  bool synced_ = false;
  std::uint64_t acked_version_ = 0;
  std::shared_ptr<const Tables> acked_;
  std::uint64_t acked_generation_ = 0;
  std::uint64_t acked_digest_ = 0;
  std::string acked_instance_;
  std::string last_logged_error_;
  SessionStatus status_;
  DataplaneClient *in_flight_ = nullptr;  // for stop()

  std::mutex query_mu_;
  std::unique_ptr<DataplaneClient> query_client_;

  std::thread thread_;
};

}  // namespace stratus::control
