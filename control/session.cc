#include "control/session.h"

#include <algorithm>
#include <sstream>

#include "control/api/convert.h"
#include "control/log.h"

namespace stratus::control {

NodeSession::NodeSession(std::string node, std::string endpoint, ClientFactory factory,
                         Metrics *metrics, SessionOptions options)
    : node_(std::move(node)),
      endpoint_(std::move(endpoint)),
      factory_(std::move(factory)),
      metrics_(metrics),
      options_(options) {
  status_.node = node_;
  status_.endpoint = endpoint_;
  if (metrics_)
    metrics_->node_state(node_, SyncState::kConnecting);
}

NodeSession::~NodeSession() {
  stop();
}

void NodeSession::start() {
  client_ = factory_(endpoint_);
  {
    std::lock_guard lock(mu_);
    in_flight_ = client_.get();
  }
  thread_ = std::thread([this] { run(); });
}

void NodeSession::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (in_flight_)
      in_flight_->cancel();
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
  std::lock_guard lock(query_mu_);
  if (query_client_)
    query_client_->cancel();
}

void NodeSession::set_desired(DesiredTables desired) {
  {
    std::lock_guard lock(mu_);
    desired_ = std::move(desired);
    ++desired_version_;
    status_.expected_digest = desired_.digest;
    status_.desired_generation = desired_.generation;
    if (status_.state == SyncState::kInSync)
      status_.state = SyncState::kSyncing;
  }
  cv_.notify_all();
}

SessionStatus NodeSession::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

std::shared_ptr<const Tables> NodeSession::acked_tables() const {
  std::lock_guard lock(mu_);
  return synced_ ? acked_ : nullptr;
}

bool NodeSession::wait_in_sync(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    return synced_ && desired_version_ > 0 && acked_version_ == desired_version_;
  });
}

void NodeSession::set_state(SyncState s, const std::string &error) {
  {
    std::lock_guard lock(mu_);
    status_.state = s;
    if (!error.empty())
      status_.last_error = error;
  }
  if (metrics_)
    metrics_->node_state(node_, s);
  cv_.notify_all();
}

void NodeSession::fail(const std::string &what, const grpc::Status &st) {
  std::string msg = what + ": " + st.error_message();
  if (st.error_message().empty())
    msg += "status " + std::to_string(st.error_code());
  bool first;
  {
    std::lock_guard lock(mu_);
    ++status_.failures;
    first = msg != last_logged_error_;
    last_logged_error_ = msg;
  }
  // One line per distinct error, not one per retry.
  if (first)
    log() << "node " << node_ << " (" << endpoint_ << "): " << msg << "; retrying";
  set_state(SyncState::kFailed, msg);
}

void NodeSession::run() {
  auto backoff = options_.backoff_initial;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_)
        return;
    }
    bool ok = sync_once();
    std::unique_lock lock(mu_);
    if (stop_)
      return;
    if (ok) {
      backoff = options_.backoff_initial;
      cv_.wait_for(lock, options_.poll_interval,
                   [&] { return stop_ || desired_version_ != acked_version_; });
    } else {
      cv_.wait_for(lock, backoff, [&] { return stop_; });
      backoff = std::min(backoff * 2, options_.backoff_max);
    }
  }
}

bool NodeSession::sync_once() {
  DesiredTables want;
  std::uint64_t version;
  {
    std::lock_guard lock(mu_);
    want = desired_;
    version = desired_version_;
  }
  if (!want.tables)
    return true;  // nothing to push yet

  pb::StateReply st;
  grpc::Status s = client_->get_state(&st);
  if (!s.ok()) {
    fail("GetState", s);
    return false;
  }

  bool full = false;
  std::string why;
  std::shared_ptr<const Tables> base;
  {
    std::lock_guard lock(mu_);
    status_.instance_id = st.instance_id();
    status_.node_generation = st.generation();
    status_.node_digest = st.digest();
    if (!synced_) {
      full = true;
      why = status_.full_syncs == 0 ? "first sync" : "re-sync after a failure";
    } else if (st.instance_id() != acked_instance_) {
      full = true;
      why = "data plane restarted (instance " + st.instance_id() + ")";
    } else if (st.generation() != acked_generation_) {
      full = true;
      why = "node at generation " + std::to_string(st.generation()) + ", expected " +
            std::to_string(acked_generation_);
    } else if (st.digest() != acked_digest_) {
      full = true;
      why = "node digest " + digest_hex(st.digest()) + ", expected " + digest_hex(acked_digest_);
    }
    if (!full) {
      if (version == acked_version_ || want.digest == acked_digest_) {
        acked_version_ = version;
        acked_ = want.tables;
        status_.state = SyncState::kInSync;
        cv_.notify_all();
        if (metrics_)
          metrics_->node_state(node_, SyncState::kInSync);
        return true;
      }
      base = acked_;
    }
  }
  if (full && !why.empty() && why.rfind("first", 0) != 0) {
    log() << "node " << node_ << ": " << why << "; full sync";
  }

  std::vector<pb::TxnOp> ops;
  if (full)
    ops = api::full_sync_ops(*want.tables);
  else if (want.ops && want.base == base)
    ops = *want.ops;  // the controller's diff, from the same base
  else
    ops = api::diff(*base, *want.tables);
  std::size_t nops = ops.size();
  pb::TxnHeader h;
  std::uint64_t generation = std::max<std::uint64_t>(want.generation, st.generation() + 1);
  h.set_generation(generation);
  h.set_base_generation(st.generation());
  h.set_full(full);
  h.set_expect_digest(want.digest);
  std::vector<pb::ApplyRequest> stream = api::chunk(h, std::move(ops), options_.chunk_bytes);

  set_state(SyncState::kSyncing);
  auto started = std::chrono::steady_clock::now();
  pb::ApplyReply reply;
  s = client_->apply(stream, &reply);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (metrics_)
    metrics_->push(node_, full, s.ok(), seconds);
  if (!s.ok()) {
    {
      std::lock_guard lock(mu_);
      synced_ = false;  // the next round re-reads the node and syncs fully
    }
    fail(std::string(full ? "full sync" : "delta") + " at generation " +
             std::to_string(generation) + " refused",
         s);
    return false;
  }
  {
    std::lock_guard lock(mu_);
    synced_ = reply.digest() == want.digest;
    acked_ = want.tables;
    acked_version_ = version;
    acked_generation_ = reply.generation();
    acked_digest_ = reply.digest();
    acked_instance_ = st.instance_id();
    last_logged_error_.clear();
    status_.node_generation = reply.generation();
    status_.node_digest = reply.digest();
    status_.last_error.clear();
    status_.last_push_ops = nops;
    status_.last_push_ms = seconds * 1e3;
    status_.last_sync = std::chrono::system_clock::now();
    ++(full ? status_.full_syncs : status_.deltas);
  }
  if (metrics_)
    metrics_->node_generation(node_, reply.generation());
  if (reply.digest() != want.digest) {
    // expect_digest makes this unreachable with a conforming data plane.
    log() << "node " << node_ << ": digest " << digest_hex(reply.digest()) << " after generation "
          << reply.generation() << ", expected " << digest_hex(want.digest);
    set_state(SyncState::kFailed, "digest mismatch after apply");
    return false;
  }
  std::ostringstream line;
  line.precision(3);
  line << std::fixed << "node " << node_ << " in sync at generation " << reply.generation() << " ("
       << (full ? "full" : "delta") << ", " << nops << " ops, " << seconds * 1e3 << " ms)";
  log_line(line.str());
  set_state(SyncState::kInSync);
  return true;
}

grpc::Status NodeSession::explain(const pb::ExplainRequest &req, pb::ExplainReply *out) {
  std::lock_guard lock(query_mu_);
  if (!query_client_)
    query_client_ = factory_(endpoint_);
  return query_client_->explain(req, out);
}

grpc::Status NodeSession::dump_flows(const pb::FlowsRequest &req, std::vector<pb::Flow> *out) {
  std::lock_guard lock(query_mu_);
  if (!query_client_)
    query_client_ = factory_(endpoint_);
  return query_client_->dump_flows(req, out);
}

}  // namespace stratus::control
