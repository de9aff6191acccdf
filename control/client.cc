#include "control/client.h"

#include <mutex>

#include "control/api/convert.h"

namespace stratus::control {

namespace {

class GrpcClient final : public DataplaneClient {
 public:
  GrpcClient(const std::string &endpoint, const GrpcClientOptions &options) : options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    // A channel of its own, so that a previous channel's reconnect back-off
    // does not delay the first call after a node comes back.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    int backoff = static_cast<int>(options.reconnect_backoff.count());
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, backoff);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, backoff);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, backoff * 5);
    channel_ = grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
    stub_ = pb::Dataplane::NewStub(channel_);
  }

  grpc::Status get_state(pb::StateReply *out) override {
    Call call(*this, options_.call_timeout);
    // The session needs generation, digest and instance, not the flow count
    // (a walk of every connection table on the node).
    pb::StateRequest req;
    req.set_skip_flows(true);
    return stub_->GetState(&call.ctx, req, out);
  }

  grpc::Status apply(const std::vector<pb::ApplyRequest> &stream, pb::ApplyReply *out) override {
    Call call(*this, options_.apply_timeout);
    auto writer = stub_->Apply(&call.ctx, out);
    for (const auto &msg : stream) {
      if (!writer->Write(msg))
        break;  // the server ended the call: Finish() says why
    }
    writer->WritesDone();
    return writer->Finish();
  }

  grpc::Status explain(const pb::ExplainRequest &req, pb::ExplainReply *out) override {
    Call call(*this, options_.call_timeout);
    return stub_->Explain(&call.ctx, req, out);
  }

  grpc::Status dump_flows(const pb::FlowsRequest &req, std::vector<pb::Flow> *out) override {
    Call call(*this, options_.call_timeout);
    auto reader = stub_->DumpFlows(&call.ctx, req);
    pb::Flow f;
    while (reader->Read(&f))
      out->push_back(f);
    return reader->Finish();
  }

  grpc::Status read_tables(Tables *out, std::chrono::milliseconds timeout) override {
    Call call(*this, timeout);
    auto reader = stub_->ReadTables(&call.ctx, pb::ReadTablesRequest());
    pb::TablesChunk chunk;
    Tables t;
    try {
      api::TxnEditor editor(t);
      while (reader->Read(&chunk)) {
        for (const auto &op : chunk.ops())
          editor.apply(op);
      }
      editor.finish();
    } catch (const api::DecodeError &e) {
      call.ctx.TryCancel();
      reader->Finish();
      return grpc::Status(grpc::StatusCode::INTERNAL, std::string("ReadTables: ") + e.what());
    }
    grpc::Status st = reader->Finish();
    if (st.ok()) {
      canonicalize(t);
      *out = std::move(t);
    }
    return st;
  }

  void cancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    if (current_)
      current_->TryCancel();
  }

 private:
  // A call's context, registered so that cancel() can reach it.
  struct Call {
    Call(GrpcClient &c, std::chrono::milliseconds timeout) : client(c) {
      ctx.set_deadline(std::chrono::system_clock::now() + timeout);
      std::lock_guard lock(client.mu_);
      client.current_ = &ctx;
      if (client.cancelled_)
        ctx.TryCancel();
    }
    ~Call() {
      std::lock_guard lock(client.mu_);
      client.current_ = nullptr;
    }
    GrpcClient &client;
    grpc::ClientContext ctx;
  };

  GrpcClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Dataplane::Stub> stub_;
  std::mutex mu_;
  grpc::ClientContext *current_ = nullptr;
  bool cancelled_ = false;
};

}  // namespace

std::unique_ptr<DataplaneClient> make_grpc_client(const std::string &endpoint,
                                                  const GrpcClientOptions &options) {
  return std::make_unique<GrpcClient>(endpoint, options);
}

ClientFactory grpc_client_factory(const GrpcClientOptions &options) {
  return [options](const std::string &endpoint) { return make_grpc_client(endpoint, options); };
}

}  // namespace stratus::control
