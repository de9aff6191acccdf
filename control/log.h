// One-line event logs of the control daemon on stderr ("2026-11-23T18:40:01Z
// stratusd: node gw-1 in sync at generation 4 (full, 12 ops, 3.1 ms)"), so
// that journald and a terminal both read them without a logging framework.
#pragma once

#include <sstream>
#include <string>

namespace stratus::control {

// Writes `line` with a UTC timestamp and a newline, atomically with respect
// to other log_line() calls.
void log_line(const std::string &line);

// log() << "node " << name << " down"; the line is written when the
// temporary goes out of scope.
class LogStream {
 public:
  LogStream() = default;
  LogStream(const LogStream &) = delete;
  LogStream &operator=(const LogStream &) = delete;
  ~LogStream() { log_line(out_.str()); }
  template <typename T>
  LogStream &operator<<(const T &v) {
    out_ << v;
    return *this;
  }

 private:
  std::ostringstream out_;
};

inline LogStream log() {
  return {};
}

// Logging can be silenced (tests that exercise many failures).
void set_log_enabled(bool enabled);

}  // namespace stratus::control
