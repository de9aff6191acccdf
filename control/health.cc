#include "control/health.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "control/log.h"

namespace stratus::control {

std::string ProbeTarget::str() const {
  if (addr.is_v6())
    return "[" + addr.str() + "]:" + std::to_string(port);
  return addr.str() + ":" + std::to_string(port);
}

ProbeTarget probe_target(const config::ServiceSpec &service, const config::BackendSpec &backend,
                         const config::HealthCheck &check) {
  ProbeTarget t;
  t.addr = check.address.empty() ? *backend.address : check.address;
  t.port = check.port != 0 ? check.port : *service.port;
  return t;
}

std::vector<HealthTarget> health_targets(const config::Config &config) {
  std::vector<HealthTarget> out;
  for (const auto &s : config.services) {
    for (const auto &b : s.backends) {
      std::optional<config::HealthCheck> hc = s.health_check_for(b);
      if (!hc)
        continue;
      out.push_back({{*s.name, *b.name}, probe_target(s, b, *hc), *hc});
    }
  }
  return out;
}

// ---------------------------------------------------------------- SocketProber

struct SocketProber::Probe {
  enum class Phase { kConnect, kSend, kRecv };
  ProbeTarget target;
  config::HealthCheck check;
  Done done;
  int fd = -1;
  Phase phase = Phase::kConnect;
  std::string request;
  std::size_t sent = 0;
  std::string response;
  std::chrono::steady_clock::time_point deadline;
  bool finished = false;
  bool ok = false;
  std::string detail;

  void finish(bool success, std::string why) {
    finished = true;
    ok = success;
    detail = std::move(why);
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
};

SocketProber::SocketProber() {
  if (::pipe2(wake_fd_, O_NONBLOCK | O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("health prober: pipe: ") + std::strerror(errno));
  }
  thread_ = std::thread([this] { run(); });
}

SocketProber::~SocketProber() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  char c = 0;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_[1], &c, 1);
  thread_.join();
  ::close(wake_fd_[0]);
  ::close(wake_fd_[1]);
}

void SocketProber::probe(const ProbeTarget &target, const config::HealthCheck &check, Done done) {
  auto p = std::make_unique<Probe>();
  p->target = target;
  p->check = check;
  p->done = std::move(done);
  p->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(check.timeout_ms);
  {
    std::lock_guard lock(mu_);
    pending_.push_back(std::move(p));
  }
  char c = 0;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_[1], &c, 1);
}

namespace {

// Starts a non-blocking connect; finishes the probe on immediate failure.
void start_connect(int &fd, const ProbeTarget &t, std::string *error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family;
  if (t.addr.is_v4()) {
    auto *sin = reinterpret_cast<sockaddr_in *>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(t.port);
    std::memcpy(&sin->sin_addr, t.addr.bytes.data(), 4);
    len = sizeof *sin;
    family = AF_INET;
  } else if (t.addr.is_v6()) {
    auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(t.port);
    std::memcpy(&sin6->sin6_addr, t.addr.bytes.data(), 16);
    len = sizeof *sin6;
    family = AF_INET6;
  } else {
    *error = "no address";
    return;
  }
  fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return;
  }
  if (::connect(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0 && errno != EINPROGRESS) {
    *error = std::string("connect: ") + std::strerror(errno);
  }
}

// "HTTP/1.1 200 OK" -> 200; -1 when the line is not a status line.
int parse_status(const std::string &line) {
  if (line.rfind("HTTP/", 0) != 0)
    return -1;
  auto sp = line.find(' ');
  if (sp == std::string::npos || sp + 4 > line.size())
    return -1;
  int code = 0;
  for (std::size_t i = sp + 1; i < sp + 4; ++i) {
    if (line[i] < '0' || line[i] > '9')
      return -1;
    code = code * 10 + (line[i] - '0');
  }
  return code;
}

}  // namespace

void SocketProber::run() {
  std::vector<std::unique_ptr<Probe>> active;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_)
        break;
      for (auto &p : pending_) {
        std::string error;
        start_connect(p->fd, p->target, &error);
        if (!error.empty())
          p->finish(false, error);
        if (p->check.type == config::HealthCheckType::kHttp) {
          p->request = "GET " + p->check.path + " HTTP/1.0\r\nHost: " + p->target.str() +
                       "\r\nUser-Agent: stratusd\r\nConnection: close\r\n\r\n";
        }
        active.push_back(std::move(p));
      }
      pending_.clear();
    }

    auto now = std::chrono::steady_clock::now();
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_[0], POLLIN, 0});
    std::vector<Probe *> polled;
    int timeout_ms = 1000;
    for (auto &p : active) {
      if (p->finished)
        continue;
      if (now >= p->deadline) {
        p->finish(false, "timeout after " + std::to_string(p->check.timeout_ms) + " ms");
        continue;
      }
      short events = p->phase == Probe::Phase::kRecv ? POLLIN : POLLOUT;
      fds.push_back({p->fd, events, 0});
      polled.push_back(p.get());
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(p->deadline - now).count() + 1;
      timeout_ms = std::min<int>(timeout_ms, static_cast<int>(left));
    }
    bool any_finished =
        std::any_of(active.begin(), active.end(), [](auto &p) { return p->finished; });
    if (!any_finished)
      ::poll(fds.data(), fds.size(), timeout_ms);

    if (fds[0].revents & POLLIN) {
      char buf[64];
      while (::read(wake_fd_[0], buf, sizeof buf) > 0) {
      }
    }
    for (std::size_t i = 0; i < polled.size(); ++i) {
      Probe &p = *polled[i];
      short rev = fds[i + 1].revents;
      if (!rev)
        continue;
      if (p.phase == Probe::Phase::kConnect) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          p.finish(false, std::string("connect: ") + std::strerror(err));
          continue;
        }
        if (p.check.type == config::HealthCheckType::kTcp) {
          p.finish(true, "connected");
          continue;
        }
        p.phase = Probe::Phase::kSend;
      }
      if (p.phase == Probe::Phase::kSend) {
        ssize_t n =
            ::send(p.fd, p.request.data() + p.sent, p.request.size() - p.sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
          p.finish(false, std::string("send: ") + std::strerror(errno));
          continue;
        }
        if (n > 0)
          p.sent += static_cast<std::size_t>(n);
        if (p.sent == p.request.size())
          p.phase = Probe::Phase::kRecv;
        continue;
      }
      // kRecv: the status line is all we need.
      char buf[512];
      ssize_t n = ::recv(p.fd, buf, sizeof buf, 0);
      if (n < 0) {
        if (errno != EAGAIN)
          p.finish(false, std::string("recv: ") + std::strerror(errno));
        continue;
      }
      p.response.append(buf, static_cast<std::size_t>(n));
      auto eol = p.response.find('\n');
      if (eol == std::string::npos && n > 0 && p.response.size() < 4096)
        continue;
      std::string line = p.response.substr(0, eol == std::string::npos ? p.response.size() : eol);
      int code = parse_status(line);
      if (code < 0) {
        p.finish(false, n == 0 && p.response.empty() ? "connection closed without a response"
                                                     : "not an HTTP response");
      } else if (static_cast<std::uint32_t>(code) == p.check.expect_status) {
        p.finish(true, "HTTP " + std::to_string(code));
      } else {
        p.finish(false, "HTTP " + std::to_string(code) + ", expected " +
                            std::to_string(p.check.expect_status));
      }
    }
    // Report outside the pending lock; done() may call probe() again.
    for (auto it = active.begin(); it != active.end();) {
      if ((*it)->finished) {
        (*it)->done((*it)->ok, (*it)->detail);
        it = active.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto &p : active) {
    if (p->fd >= 0)
      ::close(p->fd);
  }
}

// ---------------------------------------------------------------- HealthMonitor

HealthMonitor::HealthMonitor(Prober &prober, Clock &clock, Metrics *metrics, OnChange on_change)
    : prober_(prober), clock_(clock), metrics_(metrics), on_change_(std::move(on_change)) {}

HealthMonitor::~HealthMonitor() {
  stop();
}

void HealthMonitor::set_targets(const std::vector<HealthTarget> &targets) {
  std::lock_guard lock(mu_);
  std::map<BackendKey, Entry> next;
  auto now = clock_.now();
  for (const auto &t : targets) {
    auto it = entries_.find(t.key);
    if (it != entries_.end() && it->second.status.target == t.target &&
        it->second.status.check == t.check) {
      next[t.key] = std::move(it->second);
      continue;
    }
    Entry e;
    e.status.target = t.target;
    e.status.check = t.check;
    e.due = now;
    e.epoch = next_epoch_++;
    next[t.key] = std::move(e);
  }
  entries_ = std::move(next);
  cv_.notify_all();
}

std::chrono::steady_clock::time_point HealthMonitor::tick() {
  struct Start {
    BackendKey key;
    std::uint64_t epoch;
    ProbeTarget target;
    config::HealthCheck check;
  };
  std::vector<Start> starts;
  auto now = clock_.now();
  auto next = now + std::chrono::seconds(1);
  {
    std::lock_guard lock(mu_);
    for (auto &[key, e] : entries_) {
      if (!e.in_flight && e.due <= now) {
        e.in_flight = true;
        e.due = now + std::chrono::milliseconds(e.status.check.interval_ms);
        starts.push_back({key, e.epoch, e.status.target, e.status.check});
      }
      next = std::min(next, e.due);
    }
  }
  for (auto &s : starts) {
    prober_.probe(s.target, s.check,
                  [this, key = s.key, epoch = s.epoch](bool ok, const std::string &detail) {
                    result(key, epoch, ok, detail);
                  });
  }
  return next;
}

void HealthMonitor::result(const BackendKey &key, std::uint64_t epoch, bool ok,
                           const std::string &detail) {
  bool changed = false;
  bool up = false;
  std::uint32_t count = 0;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.epoch != epoch)
      return;  // target replaced
    Entry &e = it->second;
    e.in_flight = false;
    HealthStatus &s = e.status;
    ++s.probes;
    s.last_detail = detail;
    if (ok) {
      ++s.successes;
      s.failures = 0;
      if (!s.up && s.successes >= s.check.rise) {
        s.up = changed = true;
        count = s.successes;
      }
    } else {
      ++s.failures;
      s.successes = 0;
      if (s.up && s.failures >= s.check.fall) {
        s.up = false;
        changed = true;
        count = s.failures;
      }
    }
    up = s.up;
    cv_.notify_all();
  }
  if (metrics_)
    metrics_->health_check(key.first, key.second, ok);
  if (!changed)
    return;
  if (metrics_)
    metrics_->health_transition(key.first, key.second, up);
  log() << "backend " << key.first << "/" << key.second << (up ? " up" : " down") << " after "
        << count << (up ? " successes" : " failures") << " (" << detail << ")";
  if (on_change_)
    on_change_(key, up, detail);
}

std::map<BackendKey, HealthStatus> HealthMonitor::snapshot() const {
  std::lock_guard lock(mu_);
  std::map<BackendKey, HealthStatus> out;
  for (const auto &[key, e] : entries_)
    out[key] = e.status;
  return out;
}

void HealthMonitor::start() {
  thread_ = std::thread([this] {
    for (;;) {
      auto next = tick();
      std::unique_lock lock(mu_);
      if (stop_)
        return;
      // The monitor's clock drives due times; waiting uses the real clock,
      // bounded so that a result's new due time is picked up soon.
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - clock_.now());
      wait = std::clamp(wait, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
      cv_.wait_for(lock, wait, [&] { return stop_; });
      if (stop_)
        return;
    }
  });
}

void HealthMonitor::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

}  // namespace stratus::control
