#include "control/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace stratus::control {

namespace {
std::mutex log_mu;
std::atomic<bool> log_enabled{true};
}  // namespace

void set_log_enabled(bool enabled) {
  log_enabled = enabled;
}

void log_line(const std::string &line) {
  if (!log_enabled)
    return;
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::lock_guard lock(log_mu);
  std::fprintf(stderr, "%s.%03dZ stratusd: %s\n", stamp, static_cast<int>(ms), line.c_str());
  std::fflush(stderr);
}

}  // namespace stratus::control
