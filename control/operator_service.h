// The Operator gRPC service (control/operator.proto) over a Controller: the
// views stratusctl prints, operator overrides, Explain fanned out to every
// node, Reload and Validate.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "control/controller.h"
#include "control/operator.grpc.pb.h"

namespace stratus::control {

namespace op = ::stratus::ops::v1;

class OperatorService final : public op::Operator::Service {
 public:
  explicit OperatorService(Controller &controller);

  grpc::Status Status(grpc::ServerContext *, const op::StatusRequest *, op::StatusReply *) override;
  grpc::Status Nodes(grpc::ServerContext *, const op::NodesRequest *, op::NodesReply *) override;
  grpc::Status Tenants(grpc::ServerContext *, const op::TenantsRequest *,
                       op::TenantsReply *) override;
  grpc::Status Routes(grpc::ServerContext *, const op::RoutesRequest *, op::RoutesReply *) override;
  grpc::Status Services(grpc::ServerContext *, const op::ServicesRequest *,
                        op::ServicesReply *) override;
  grpc::Status Backends(grpc::ServerContext *, const op::BackendsRequest *,
                        op::BackendsReply *) override;
  grpc::Status SetBackend(grpc::ServerContext *, const op::SetBackendRequest *,
                          op::SetBackendReply *) override;
  grpc::Status Flows(grpc::ServerContext *, const op::FlowsRequest *, op::FlowsReply *) override;
  grpc::Status Explain(grpc::ServerContext *, const op::ExplainRequest *,
                       op::ExplainReply *) override;
  grpc::Status Reload(grpc::ServerContext *, const op::ReloadRequest *, op::ReloadReply *) override;
  grpc::Status Validate(grpc::ServerContext *, const op::ValidateRequest *,
                        op::ValidateReply *) override;

 private:
  bool backend_info(const std::string &service, const std::string &backend,
                    op::BackendInfo *out) const;

  Controller &controller_;
  const std::chrono::steady_clock::time_point started_;
};

void to_proto(const ReloadResult &r, op::ReloadResult *out);

// Starts a gRPC server for the operator service on "unix:/path" (socket file
// created with `mode`, a stale one replaced) and, if not empty, on
// "host:port". Throws std::runtime_error when it cannot listen.
std::unique_ptr<grpc::Server> serve_operator(grpc::Service &service, const std::string &socket_path,
                                             unsigned mode, const std::string &tcp_listen);

}  // namespace stratus::control
