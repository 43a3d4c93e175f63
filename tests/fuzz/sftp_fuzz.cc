// libFuzzer target: the SFTP answers the sshfs polling fallback reads from a
// server (src/client/sftp_codec.h). Whatever the bytes, decoding either fails
// with an error or gives names that cannot leave the directory listed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "poll/sftp_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // As a stream: length-prefixed packets one after another.
  while (bytes.size() >= 4) {
    auto length = rnotify::sftp::packetLength(bytes);
    if (!length.ok() || bytes.size() - 4 < *length) break;
    auto reply = rnotify::sftp::decodeReply(bytes.substr(4, *length));
    if (reply.ok()) {
      for (const auto& entry : reply->names) {
        if (entry.name.empty() || entry.name.find('/') != std::string::npos) std::abort();
      }
    }
    bytes.remove_prefix(4 + *length);
  }
  // And as one packet body.
  (void)rnotify::sftp::decodeReply(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
