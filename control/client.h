// How stratusd talks to one data-plane node: the Dataplane API calls it makes,
// behind an interface so that the control logic runs against an in-process
// fake as well as over gRPC (unix socket or TCP).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "control/api/dataplane.grpc.pb.h"
#include "control/api/driver.h"

namespace stratus::control {

namespace pb = ::stratus::dataplane::v1;

class DataplaneClient {
 public:
  virtual ~DataplaneClient() = default;

  // GetState without the flow count (StateRequest.skip_flows).
  virtual grpc::Status get_state(pb::StateReply *out) = 0;
  // One transaction: the messages of one Apply stream (control/api/convert.h chunk()).
  virtual grpc::Status apply(const std::vector<pb::ApplyRequest> &stream, pb::ApplyReply *out) = 0;
  virtual grpc::Status explain(const pb::ExplainRequest &req, pb::ExplainReply *out) = 0;
  virtual grpc::Status dump_flows(const pb::FlowsRequest &req, std::vector<pb::Flow> *out) = 0;
  // The node's installed tables (ReadTables), within `timeout`.
  virtual grpc::Status read_tables(Tables *out, std::chrono::milliseconds timeout) = 0;
  // Aborts the call in progress, if any, from another thread (shutdown).
  virtual void cancel() = 0;
};

// Makes the client of one node from its endpoint ("unix:/path", "host:port").
using ClientFactory = std::function<std::unique_ptr<DataplaneClient>(const std::string &endpoint)>;

struct GrpcClientOptions {
  std::chrono::milliseconds call_timeout{10000};   // GetState, Explain, DumpFlows
  std::chrono::milliseconds apply_timeout{60000};  // a full sync of large tables
  // gRPC's own reconnect back-off, kept short: the session does its own.
  std::chrono::milliseconds reconnect_backoff{200};
};

// The gRPC client; each call has a deadline.
std::unique_ptr<DataplaneClient> make_grpc_client(const std::string &endpoint,
                                                  const GrpcClientOptions &options = {});

ClientFactory grpc_client_factory(const GrpcClientOptions &options = {});

}  // namespace stratus::control
