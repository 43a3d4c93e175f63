// Where an SMB watch goes and as whom: the server/share/path of a cifs mount
// source or an smb:// URL, and the user, password and domain from a
// credentials file in the format mount.cifs reads (credentials=<file>). The
// file holds a password, so like ssh with a private key we refuse one that
// its group or others may read.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace rnotify {

struct SmbLocation {
  std::string server;  // host name or address, without brackets
  int port = 0;        // 0: the default (445)
  std::string share;
  std::string path;  // inside the share: "" or "a/b" ('/' separated, no leading or trailing '/')
};

struct SmbCredentials {
  std::string user, password, domain;
};

// Parses the text of a credentials file: "key=value" lines with the keys
// username/user, password/pass, domain/dom; '#' or ';' comment lines, blank
// lines and CRLF line ends are accepted. A username of the form DOMAIN/user
// or DOMAIN\user sets the domain too (as mount.cifs does). An unknown key is an
// error naming the line: a typo must not silently log in as nobody.
Result<SmbCredentials> parseCredentials(std::string_view text, const std::string& source = "credentials");
// Reads and parses `path`; refuses (EACCES) a file that its group or others
// may read, telling the user to chmod 600 it.
Result<SmbCredentials> readCredentialsFile(const std::string& path);

// "//server/share/sub/dir" or "\\server\share" as /proc/self/mountinfo shows a
// cifs mount's source; `port` is the mount's port= option (0 if none). A
// server written "[v6addr]" or "host:port" is also accepted.
Result<SmbLocation> parseMountSource(std::string_view source, int port = 0);
// "smb://[domain;][user[:password]@]server[:port]/share[/path]"; credentials in
// the URL are returned through `credentials` when given (else ignored).
Result<SmbLocation> parseSmbUrl(std::string_view url, SmbCredentials* credentials = nullptr);
// The smb:// URL libsmbclient opens for a location (percent-encoded; the
// path's directory, never credentials).
std::string smbUrl(const SmbLocation& location);

// What the user should do about a failed connect, open or watch (errno code).
std::string smbFixHint(int code);

}  // namespace rnotify
