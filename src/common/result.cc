#include "common/result.h"

#include <cstring>

namespace rnotify {

Error Error::fromErrno(int code, const std::string& what) { return Error{code, what + ": " + std::strerror(code)}; }

Error lastError(const std::string& what) { return Error::fromErrno(errno, what); }

}  // namespace rnotify
