// Internal error type: backends and validation throw mhc::Error; only src/api.cpp catches it
// and turns it into a status plus the thread-local message. Nothing here crosses the ABI.
#pragma once

#include <cstdarg>
#include <cstdio>
#include <string>

#include "mhc/mhc.h"

namespace mhc {

class Error {
 public:
  Error(mhc_status_t status, std::string message) : status_(status), message_(std::move(message)) {}
  mhc_status_t status() const { return status_; }
  const std::string &message() const { return message_; }

 private:
  mhc_status_t status_;
  std::string message_;
};

// printf-style throw; the message should name the argument, the expected and the actual value.
[[noreturn]] __attribute__((format(printf, 2, 3))) inline void fail(mhc_status_t status,
                                                                     const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  throw Error(status, buf);
}

}  // namespace mhc
