#include "server/descriptor_limit.h"

#include <algorithm>
#include <fstream>
#include <string>

namespace rnotify {
namespace {

// fs.nr_open: the kernel's ceiling on RLIMIT_NOFILE (setrlimit fails above it).
rlim_t kernelCeiling() {
  std::ifstream in("/proc/sys/fs/nr_open");
  unsigned long long value = 0;
  if (in >> value && value > 0) return static_cast<rlim_t>(value);
  return kDescriptorCap;
}

std::string howToRaise(rlim_t hard) {
  if (hard != RLIM_INFINITY && hard >= std::min(kernelCeiling(), kDescriptorCap)) {
    return "rnotifyd raises its limit up to fs.nr_open or " + std::to_string(kDescriptorCap) + ", not further";
  }
  return "raise the hard descriptor limit (now " + std::to_string(hard) +
         ") with ulimit -Hn or LimitNOFILE= in a systemd unit, or run rnotifyd as root with CAP_SYS_RESOURCE";
}

}  // namespace

Result<DescriptorBudget> fitClientsToDescriptors(uint32_t wantedClients, bool explicitRequest) {
  struct rlimit current;
  if (::getrlimit(RLIMIT_NOFILE, &current) != 0) return lastError("getrlimit(RLIMIT_NOFILE)");
  const rlim_t needed = descriptorsFor(wantedClients);
  struct rlimit raised = current;
  if (raised.rlim_max != RLIM_INFINITY && raised.rlim_max < needed) {
    // Only as far as the clients need: a lower hard limit an administrator set
    // stays in force when it suffices.
    raised.rlim_max = std::max(raised.rlim_max, std::min({needed, kernelCeiling(), kDescriptorCap}));
  }
  raised.rlim_cur = raised.rlim_max == RLIM_INFINITY ? std::min(kernelCeiling(), kDescriptorCap) : raised.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    // Not root: the hard limit stays; the soft one can still reach it.
    raised.rlim_max = current.rlim_max;
    raised.rlim_cur = current.rlim_max == RLIM_INFINITY ? current.rlim_cur : current.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) raised = current;
  }
  DescriptorBudget budget;
  budget.limit = raised.rlim_cur;
  budget.hardLimit = raised.rlim_max;
  const rlim_t fit =
      budget.limit > kReservedDescriptors ? (budget.limit - kReservedDescriptors) / kDescriptorsPerClient : 0;
  if (fit == 0) {
    return Error{EMFILE, "the descriptor limit " + std::to_string(budget.limit) + " is too low to serve any client: " +
                             std::to_string(descriptorsFor(1)) + " are needed; " + howToRaise(budget.hardLimit)};
  }
  budget.maxClients = static_cast<uint32_t>(std::min<rlim_t>(fit, wantedClients));
  budget.fitted = budget.maxClients < wantedClients;
  if (budget.fitted && explicitRequest) {
    return Error{EMFILE, "--max-clients " + std::to_string(wantedClients) + " needs " + std::to_string(needed) +
                             " descriptors, but the limit is " + std::to_string(budget.limit) + ", enough for " +
                             std::to_string(fit) + " clients; lower --max-clients, or " + howToRaise(budget.hardLimit)};
  }
  return budget;
}

}  // namespace rnotify
