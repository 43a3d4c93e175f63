#include "preload/notice.h"

#include <cstdlib>
#include <mutex>
#include <set>

#include "common/log.h"

namespace rnotify::preload {
namespace {

std::mutex gMutex;
std::set<std::string>* gTold = nullptr;  // never freed: notices may come while the process exits

}  // namespace

void setUpLogging() {
  static std::once_flag once;
  std::call_once(once, [] {
    log::setProgram("rnotify-preload");
    if (const char* file = std::getenv("RNOTIFY_LOG"); file != nullptr && *file != '\0') log::setFile(file);
    if (std::getenv("RNOTIFY_LOG_LEVEL") == nullptr) log::setLevel(log::Level::kOff);
  });
}

void noticeOnce(const std::string& key, const std::string& message) {
  {
    std::lock_guard lock(gMutex);
    if (gTold == nullptr) gTold = new std::set<std::string>();
    if (!gTold->insert(key).second) return;
  }
  log::write(log::Level::kWarn, message);
}

}  // namespace rnotify::preload
