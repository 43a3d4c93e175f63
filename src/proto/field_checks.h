// The rules on strings and event paths that both the decoder (on what
// arrives) and validate() (on what is about to be sent) apply, in one place so
// that a sender and a receiver can never disagree about what is well formed.
// Each returns an empty string when the value is fine, else the reason.
#pragma once

#include <string>
#include <string_view>

namespace rnotify::proto {

// At most `limit` bytes and no NUL.
std::string stringProblem(std::string_view field, std::string_view s, size_t limit);
// "" or a relative path "a/b": no leading, trailing or doubled '/', no "." or "..".
std::string dirProblem(std::string_view dir);
// "" or one directory entry: no '/', not "." or "..".
std::string nameProblem(std::string_view name);
// An Auth user name: 1..255 bytes, no '/', not "." or ".." (the server uses
// it as a file name in its token directory).
std::string userProblem(std::string_view user);

}  // namespace rnotify::proto
