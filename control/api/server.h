// The Dataplane gRPC service, implemented once for both data planes over a
// DataplaneDriver (control/api/driver.h): transaction assembly and checks,
// generation and digest, persistence of the last applied tables, Explain,
// flow dump, and the data-plane /metrics families of SPEC.md §6.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/tables.h"
#include "control/api/dataplane.grpc.pb.h"
#include "control/api/driver.h"

namespace prometheus {
class Collectable;
}

namespace stratus::api {

struct ServiceOptions {
  std::string node_name;  // reported until a node table is installed
  DataplaneKind kind = DataplaneKind::kXdp;
  // Where the last applied tables and generation are kept (written
  // atomically after every successful Apply, read by restore()). Empty: no
  // persistence.
  std::string state_file;
};

class DataplaneService final : public pb::Dataplane::Service {
 public:
  DataplaneService(DataplaneDriver &driver, ServiceOptions options);

  // Loads the state file, if there is one, and installs its tables through
  // the driver (a restarted agent re-adopts what it had). Returns false,
  // after logging why, if the file exists but cannot be used.
  bool restore();

  ~DataplaneService() override;

  std::uint64_t generation() const;
  std::uint64_t table_digest() const;
  // The live tables (immutable; replaced whole by each Apply).
  std::shared_ptr<const Tables> tables() const;
  const std::string &instance_id() const { return instance_id_; }
  const ServiceOptions &options() const { return options_; }

  // Transaction outcomes and install latency, for /metrics.
  struct ApplyStats {
    std::uint64_t applied = 0;
    std::uint64_t failed = 0;
    std::vector<std::uint64_t> latency_buckets;  // cumulative, by kLatencyBounds
    std::uint64_t latency_count = 0;
    double latency_sum_s = 0;
  };
  static const std::vector<double> kLatencyBounds;
  ApplyStats apply_stats() const;

  // Applies a transaction assembled in memory (what the Apply stream
  // carries). Used by Apply and by tests. Throws nothing; returns a status.
  grpc::Status apply(const std::vector<pb::ApplyRequest> &stream, pb::ApplyReply *reply);

  grpc::Status Apply(grpc::ServerContext *ctx, grpc::ServerReader<pb::ApplyRequest> *reader,
                     pb::ApplyReply *reply) override;
  grpc::Status GetState(grpc::ServerContext *ctx, const pb::StateRequest *req,
                        pb::StateReply *reply) override;
  grpc::Status ReadTables(grpc::ServerContext *ctx, const pb::ReadTablesRequest *req,
                          grpc::ServerWriter<pb::TablesChunk> *writer) override;
  grpc::Status GetCounters(grpc::ServerContext *ctx, const pb::CountersRequest *req,
                           pb::CountersReply *reply) override;
  grpc::Status Explain(grpc::ServerContext *ctx, const pb::ExplainRequest *req,
                       pb::ExplainReply *reply) override;
  grpc::Status DumpFlows(grpc::ServerContext *ctx, const pb::FlowsRequest *req,
                         grpc::ServerWriter<pb::Flow> *writer) override;

  // Counters with names filled in from the live tables (GetCounters and
  // /metrics share this).
  void counters(pb::CountersReply *out);

  DataplaneDriver &driver() { return driver_; }

 private:
  grpc::Status commit(std::shared_ptr<const Tables> next, std::uint64_t generation,
                      pb::ApplyReply *reply);
  void record(bool ok, double seconds);
  // The spare tables replayed up to the live ones, or nullptr.
  std::shared_ptr<Tables> take_spare();
  void spare_loop();
  void persist_loop();

  DataplaneDriver &driver_;
  ServiceOptions options_;
  std::string instance_id_;
  std::uint64_t started_unix_s_;

  std::mutex apply_mu_;  // one transaction at a time, held across install
  // Under apply_mu_: the live tables (the object tables_ points to), and the
  // tables before the last delta Apply with that Apply's operations, which
  // turn them into the live ones (double buffering: a delta edits the spare
  // instead of a copy of everything). Costs a second set of tables in memory.
  std::shared_ptr<Tables> live_mut_;
  std::shared_ptr<Tables> spare_;
  std::vector<pb::TxnOp> last_ops_;

  mutable std::mutex mu_;  // guards the snapshot below (short critical sections)
  std::shared_ptr<const Tables> tables_;
  std::uint64_t generation_ = 0;
  std::uint64_t digest_ = 0;                        // reported: 0 until the first Apply
  std::uint64_t tables_digest_ = digest(Tables{});  // digest(*tables_), always
  ApplyStats stats_;

  // After a full sync, a copy of the new tables is made off the Apply path
  // to become the spare.
  std::mutex spare_mu_;
  std::condition_variable spare_cv_;
  std::shared_ptr<const Tables> spare_source_;
  bool spare_stop_ = false;
  std::thread spare_thread_;

  // Persistence runs off the Apply path: the newest snapshot wins.
  std::mutex persist_mu_;
  std::condition_variable persist_cv_;
  std::shared_ptr<const Tables> persist_next_;
  std::uint64_t persist_generation_ = 0;
  bool persist_stop_ = false;
  std::thread persist_thread_;
};

// Starts a gRPC server for `service` on "unix:/path" or "host:port" (a unix
// socket file is created with mode 0660 and replaced if stale). Throws
// std::runtime_error when it cannot listen.
std::unique_ptr<grpc::Server> serve(grpc::Service &service, const std::string &endpoint);

// The data-plane metric families (SPEC.md §6), collected at scrape time
// from service.counters(): register with a prometheus::Exposer. The Exposer
// holds collectables by weak pointer: keep the returned pointer alive as
// long as the Exposer serves it.
std::shared_ptr<prometheus::Collectable> dataplane_metrics(DataplaneService &service);

}  // namespace stratus::api
