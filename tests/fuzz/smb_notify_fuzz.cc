// libFuzzer target for the SMB2 change notification decoder
// (src/smb/cifs_notify.h): the bytes a cifs mount's CIFS_IOC_NOTIFY_INFO
// leaves in the buffer, i.e. FILE_NOTIFY_INFORMATION records from a server.
//
// The whole input is decoded both as a struct smb3_notify_info and as a bare
// record chain. Whatever decodes must
//   - hold names that are valid UTF-8 without U+0000,
//   - re-encode (UTF-8 -> UTF-16LE, records 4-byte aligned) to a chain that
//     decodes to the same records,
//   - translate through the action table into events whose dir and name
//     never leave the watched directory ('..', '.', empty components).
// The input is also read as the helper program's config packet
// (smb_helper_wire.h), which must re-encode to itself when it decodes.
// ASan/UBSan catch any read out of bounds; any violation aborts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "smb/cifs_notify.h"
#include "smb/smb_helper_wire.h"

namespace {

using namespace rnotify;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  fprintf(stderr, "smb_notify_fuzz: %s %s\n", what, detail.c_str());
  abort();
}

// Strict UTF-8 decode into code points (the decoder's output must pass).
std::vector<uint32_t> codePoints(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) fail("invalid UTF-8 lead byte in", s);
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) fail("invalid UTF-8 continuation in", s);
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0) fail("bad code point in", s);
    out.push_back(cp);
    i += n;
  }
  return out;
}

std::vector<uint8_t> encodeChain(const std::vector<NotifyRecord>& records) {
  std::vector<uint8_t> out;
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) out[at + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  for (size_t r = 0; r < records.size(); ++r) {
    std::vector<uint8_t> name;
    for (uint32_t cp : codePoints(records[r].name)) {
      auto unit = [&](uint32_t u) {
        name.push_back(static_cast<uint8_t>(u & 0xFF));
        name.push_back(static_cast<uint8_t>(u >> 8));
      };
      if (cp >= 0x10000) {
        unit(0xD800 + ((cp - 0x10000) >> 10));
        unit(0xDC00 + ((cp - 0x10000) & 0x3FF));
      } else {
        unit(cp);
      }
    }
    size_t at = out.size();
    size_t len = 12 + name.size();
    size_t padded = (len + 3) & ~size_t{3};
    bool last = r + 1 == records.size();
    out.resize(at + (last ? len : padded));
    put32(at, last ? 0 : static_cast<uint32_t>(padded));
    put32(at + 4, records[r].action);
    put32(at + 8, static_cast<uint32_t>(name.size()));
    std::copy(name.begin(), name.end(), out.begin() + static_cast<long>(at + 12));
  }
  return out;
}

void check(const std::vector<NotifyRecord>& records) {
  auto again = decodeNotifyRecords(encodeChain(records));
  if (!again.ok()) fail("re-encoded chain does not decode:", again.error().message);
  if (*again != records) fail("re-encoded chain decodes differently");

  NotifyTranslator translator(0xFFF);
  std::vector<Event> events;
  translator.translate(records, &events);
  translator.flush(&events);
  for (const Event& e : events) {
    for (const std::string* part : {&e.dir, &e.name}) {
      std::string s = "/" + *part + "/";
      if (s.find("/../") != std::string::npos || s.find("/./") != std::string::npos ||
          (!part->empty() && s.find("//") != std::string::npos) || part->find('\\') != std::string::npos) {
        fail("event path leaves the watch:", e.dir + " | " + e.name);
      }
    }
    if (e.name.find('/') != std::string::npos) fail("event name holds '/':", e.name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto info = decodeCifsNotifyInfo(bytes);
  if (info.ok()) check(info->records);
  auto records = decodeNotifyRecords(bytes);
  if (records.ok()) check(*records);
  // The same bytes as the first packet SmbNotify sends its helper program
  // (smb_helper_wire.h): whatever decodes re-encodes to the same bytes.
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto config = smbwire::decodeConfig(text)) {
    if (smbwire::encodeConfig(*config) != text) fail("helper config does not round-trip");
  }
  return 0;
}
