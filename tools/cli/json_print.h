// Pretty-printing of JSON for human-readable verb output.

#ifndef LLMCACHE_TOOLS_CLI_JSON_PRINT_H_
#define LLMCACHE_TOOLS_CLI_JSON_PRINT_H_

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <iosfwd>
#include <string>

namespace llmcache::cli {

// Writes `v` indented by two spaces per level, one member per line.
void PrettyPrint(const boost::json::value& v, std::ostream& out,
                 int indent = 0);

// Writes `v` on one line followed by '\n' (the --json output of a verb).
void PrintJsonLine(const boost::json::value& v, std::ostream& out);

// A --json line written while it is computed, for verbs that print entries
// as they read them: BeginJsonEntries writes `{"entries":[`, the caller
// writes the elements (comma-separated), EndJsonEntries closes the array and
// adds the members of `tail` and '\n'.
void BeginJsonEntries(std::ostream& out);
void EndJsonEntries(const boost::json::object& tail, std::ostream& out);

}  // namespace llmcache::cli

#endif  // LLMCACHE_TOOLS_CLI_JSON_PRINT_H_
