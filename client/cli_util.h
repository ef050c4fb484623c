#ifndef STRATA_CLIENT_CLI_UTIL_H_
#define STRATA_CLIENT_CLI_UTIL_H_

// Pieces of the `strata` CLI that are worth testing on their own: prefix
// bounds, import line parsing and batching, argv normalization.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "client/strata_client.h"

namespace strata::cli {

// The smallest key greater than every key that starts with `prefix`, for use
// as a scan's exclusive end: trailing 0xff bytes are dropped and the last
// remaining byte is incremented. Returns "" (= no upper bound) if the prefix
// is empty or all 0xff.
std::string PrefixSuccessor(std::string_view prefix);

// Splits one import line "key<TAB>value" at the first TAB (the value may
// contain more TABs). InvalidArgument if there is no TAB or the key is
// empty.
absl::StatusOr<Mutation> ParseImportLine(std::string_view line);

// Groups mutations into Write calls of at most max_mutations mutations and
// about max_bytes bytes (a single larger pair goes alone).
class ImportBatcher {
 public:
  ImportBatcher(size_t max_mutations, size_t max_bytes)
      : max_mutations_(max_mutations), max_bytes_(max_bytes) {}

  // True if `m` does not fit in the current batch, which must then be sent
  // (Take) before Add.
  bool WouldOverflow(const Mutation& m) const;
  void Add(Mutation m);
  bool empty() const { return batch_.empty(); }
  size_t bytes() const { return bytes_; }
  // Returns the current batch and starts a new one.
  std::vector<Mutation> Take();

 private:
  static size_t Cost(const Mutation& m);

  const size_t max_mutations_;
  const size_t max_bytes_;
  std::vector<Mutation> batch_;
  size_t bytes_ = 0;
};

// A `strata txn` script (docs/transactions.md): one statement per line,
// words separated by blanks; a word in double quotes may hold blanks and C
// escapes ("a b", "\x00"); empty lines and lines starting with '#' are
// skipped.
//   compare KEY TARGET OP X
//   compare-range START END TARGET OP X   (END "" = every key >= START)
//   compare-prefix PREFIX TARGET OP X
//       TARGET: version | create | mod | value | int;  OP: = | != | > | <
//       X: an integer (a string for value); int compares an INT64 value
//       as a number
//   then|else get KEY
//   then|else put KEY VALUE
//   then|else delete KEY
//   then|else scan START END [LIMIT]        (END "" = no upper bound)
//   then|else scan-prefix PREFIX [LIMIT]
//   then|else incr KEY DELTA                (DELTA may be negative)
//   then|else json-get KEY [POINTER]        (no POINTER = the document)
//   then|else json-merge KEY PATCH          (RFC 7386 JSON Merge Patch)
//   then|else json-patch KEY PATCH          (RFC 6902 JSON Patch)
struct TxnScript {
  std::vector<Compare> compares;
  std::vector<TxnOp> success;
  std::vector<TxnOp> failure;
};
// Parses a whole script. InvalidArgument naming the line ("line 3: ...")
// for an unknown statement, a wrong number of words, a bad target,
// operator or number, or an unterminated quote.
absl::StatusOr<TxnScript> ParseTxnScript(std::string_view text);
// The words of one line, quotes removed and escapes decoded.
absl::StatusOr<std::vector<std::string>> SplitTxnWords(std::string_view line);

// Abseil flag names use underscores; rewrites "--keys-only" to
// "--keys_only" so both spellings work: an argument "--a-b[=value]" before a
// bare "--" is rewritten when "a_b" is a registered flag. Modifies the
// strings in place.
void NormalizeFlagDashes(int argc, char** argv);

}  // namespace strata::cli

#endif  // STRATA_CLIENT_CLI_UTIL_H_
