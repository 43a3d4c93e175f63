#include "poll/sftp_codec.h"

#include <cerrno>

namespace rnotify::sftp {
namespace {

constexpr uint32_t kAttrSize = 0x1;
constexpr uint32_t kAttrUidGid = 0x2;
constexpr uint32_t kAttrPermissions = 0x4;
constexpr uint32_t kAttrAcModTime = 0x8;
constexpr uint32_t kAttrExtended = 0x80000000u;

void put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void putString(std::string& out, std::string_view s) {
  put32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

std::string packet(Type type, std::string_view body) {
  std::string out;
  put32(out, static_cast<uint32_t>(body.size() + 1));
  out.push_back(static_cast<char>(type));
  out.append(body);
  return out;
}

// Reads big-endian fields from a body, failing once anything is short.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool u8(uint8_t* v) {
    if (bytes_.empty()) return false;
    *v = static_cast<uint8_t>(bytes_[0]);
    bytes_.remove_prefix(1);
    return true;
  }
  bool u32(uint32_t* v) {
    if (bytes_.size() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v = (*v << 8) | static_cast<uint8_t>(bytes_[i]);
    bytes_.remove_prefix(4);
    return true;
  }
  bool u64(uint64_t* v) {
    uint32_t hi, lo;
    if (!u32(&hi) || !u32(&lo)) return false;
    *v = (uint64_t{hi} << 32) | lo;
    return true;
  }
  bool str(std::string_view* s) {
    uint32_t n;
    if (!u32(&n) || n > bytes_.size()) return false;
    *s = bytes_.substr(0, n);
    bytes_.remove_prefix(n);
    return true;
  }
  bool attrs(Attrs* a) {
    uint32_t flags;
    if (!u32(&flags)) return false;
    if (flags & kAttrSize) {
      if (!u64(&a->size)) return false;
      a->hasSize = true;
    }
    if (flags & kAttrUidGid) {
      if (!u32(&a->uid) || !u32(&a->gid)) return false;
      a->hasOwner = true;
    }
    if (flags & kAttrPermissions) {
      if (!u32(&a->mode)) return false;
      a->hasMode = true;
    }
    if (flags & kAttrAcModTime) {
      uint32_t atime;
      if (!u32(&atime) || !u32(&a->mtime)) return false;
      a->hasTimes = true;
    }
    if (flags & kAttrExtended) {
      uint32_t count;
      if (!u32(&count)) return false;
      // Each pair takes at least 8 bytes: a count beyond that is a lie.
      if (count > bytes_.size() / 8) return false;
      for (uint32_t i = 0; i < count; ++i) {
        std::string_view type, data;
        if (!str(&type) || !str(&data)) return false;
      }
    }
    return true;
  }
  size_t left() const { return bytes_.size(); }

 private:
  std::string_view bytes_;
};

Error malformed(const char* what) { return Error{EPROTO, std::string("malformed SFTP ") + what}; }

}  // namespace

std::string encodeInit(uint32_t version) {
  std::string body;
  put32(body, version);
  return packet(kInit, body);
}

std::string encodeRequest(Type type, uint32_t id, std::string_view argument) {
  std::string body;
  put32(body, id);
  putString(body, argument);
  return packet(type, body);
}

Result<uint32_t> packetLength(std::string_view bytes) {
  Reader r(bytes);
  uint32_t n;
  if (!r.u32(&n)) return Error{EAGAIN, "incomplete SFTP length"};
  if (n == 0) return malformed("packet (length 0)");
  if (n > kMaxPacket) {
    return Error{EMSGSIZE, "SFTP packet of " + std::to_string(n) + " bytes (at most " + std::to_string(kMaxPacket) +
                               " accepted)"};
  }
  return n;
}

Result<Reply> decodeReply(std::string_view body) {
  Reader r(body);
  uint8_t type;
  if (!r.u8(&type)) return malformed("packet (no type)");
  Reply reply;
  reply.type = static_cast<Type>(type);
  switch (type) {
    case kVersion: {
      if (!r.u32(&reply.version)) return malformed("VERSION");
      // Extensions (name, data pairs) follow; none is used.
      while (r.left() > 0) {
        std::string_view name, data;
        if (!r.str(&name) || !r.str(&data)) return malformed("VERSION extension");
      }
      return reply;
    }
    case kStatus: {
      if (!r.u32(&reply.id) || !r.u32(&reply.status)) return malformed("STATUS");
      std::string_view message, language;
      // Version 3 servers may omit the message and language.
      if (r.left() > 0) {
        if (!r.str(&message)) return malformed("STATUS message");
        if (r.left() > 0 && !r.str(&language)) return malformed("STATUS language");
      }
      reply.message.assign(message);
      return reply;
    }
    case kHandle: {
      std::string_view handle;
      if (!r.u32(&reply.id) || !r.str(&handle)) return malformed("HANDLE");
      if (handle.empty() || handle.size() > 256) return malformed("HANDLE (length out of range)");
      reply.handle.assign(handle);
      return reply;
    }
    case kName: {
      uint32_t count;
      if (!r.u32(&reply.id) || !r.u32(&count)) return malformed("NAME");
      // An entry takes at least 12 bytes (two empty strings and the flags).
      if (count > r.left() / 12) return malformed("NAME (count exceeds the packet)");
      reply.names.reserve(count);
      for (uint32_t i = 0; i < count; ++i) {
        std::string_view name, longName;
        NameEntry entry;
        if (!r.str(&name) || !r.str(&longName) || !r.attrs(&entry.attrs)) return malformed("NAME entry");
        if (name.empty() || name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
          return malformed("NAME entry (a name that is empty or holds '/' or NUL)");
        }
        entry.name.assign(name);
        reply.names.push_back(std::move(entry));
      }
      return reply;
    }
    case kAttrs: {
      if (!r.u32(&reply.id) || !r.attrs(&reply.attrs)) return malformed("ATTRS");
      return reply;
    }
    default:
      return Error{EPROTO, "unexpected SFTP packet type " + std::to_string(type)};
  }
}

const char* statusName(uint32_t code) {
  switch (code) {
    case kOk:
      return "ok";
    case kEof:
      return "end of file";
    case kNoSuchFile:
      return "no such file";
    case kPermissionDenied:
      return "permission denied";
    case kFailure:
      return "failure";
    default:
      return "error";
  }
}

}  // namespace rnotify::sftp
