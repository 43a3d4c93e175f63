// The few SFTP (version 3, draft-ietf-secsh-filexfer-02) packets the polling
// backend needs to read a server's tree over a separate SFTP session: INIT and
// VERSION, OPENDIR, READDIR, CLOSE, LSTAT and their answers HANDLE, NAME,
// ATTRS, STATUS. Encoding builds whole packets (uint32 length, type, body);
// decoding takes one packet body as received and checks every length against
// the bytes there are: a malformed or oversized packet is an error naming
// what is wrong, never a read past the end. Fuzzed: tests/fuzz/sftp_fuzz.cc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace rnotify::sftp {

enum Type : uint8_t {
  kInit = 1,
  kVersion = 2,
  kClose = 4,
  kLstat = 7,
  kOpendir = 11,
  kReaddir = 12,
  kStatus = 101,
  kHandle = 102,
  kName = 104,
  kAttrs = 105,
};

enum StatusCode : uint32_t {
  kOk = 0,
  kEof = 1,
  kNoSuchFile = 2,
  kPermissionDenied = 3,
  kFailure = 4,
};

// A packet larger than this is refused: OpenSSH's sftp-server sends at most
// 256 KiB, and a READDIR answer is far smaller.
inline constexpr uint32_t kMaxPacket = 1u << 20;

struct Attrs {
  bool hasSize = false, hasOwner = false, hasMode = false, hasTimes = false;
  uint64_t size = 0;
  uint32_t uid = 0, gid = 0;
  uint32_t mode = 0;   // st_mode: type and permission bits
  uint32_t mtime = 0;  // seconds: SFTP v3 has nothing finer
};

struct NameEntry {
  std::string name;
  Attrs attrs;
};

// One decoded answer from the server. id is 0 for VERSION.
struct Reply {
  Type type = kStatus;
  uint32_t id = 0;
  uint32_t version = 0;          // kVersion
  uint32_t status = kOk;         // kStatus
  std::string message;           // kStatus
  std::string handle;            // kHandle
  std::vector<NameEntry> names;  // kName
  Attrs attrs;                   // kAttrs
};

std::string encodeInit(uint32_t version = 3);
// OPENDIR, READDIR, CLOSE, LSTAT: one string argument (a path or a handle).
std::string encodeRequest(Type type, uint32_t id, std::string_view argument);

// The length of the packet at the start of `bytes` (its 4-byte length field
// excluded), once 4 bytes are there; an error if it exceeds kMaxPacket or is 0.
Result<uint32_t> packetLength(std::string_view bytes);
// A packet's body: its type byte and what follows.
Result<Reply> decodeReply(std::string_view body);

const char* statusName(uint32_t code);

}  // namespace rnotify::sftp
