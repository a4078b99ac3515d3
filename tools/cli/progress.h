// Progress: a one-line progress bar with rate and ETA on a terminal.
//
// Draws on `err` only when `enabled` (the caller passes "stderr is a
// terminal"), at most 10 times a second, and erases itself in Finish(). With
// an unknown total it shows the count and the rate only.

#ifndef LLMCACHE_TOOLS_CLI_PROGRESS_H_
#define LLMCACHE_TOOLS_CLI_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace llmcache::cli {

class Progress {
 public:
  Progress(std::ostream& err, bool enabled, std::string label,
           uint64_t total = 0);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Sets the number of items done so far (redraws if due).
  void Update(uint64_t done);
  void Add(uint64_t n = 1) { Update(done_ + n); }
  void set_total(uint64_t total) { total_ = total; }
  // Erases the bar.
  void Finish();

  // Rate and ETA show as "-" for the first kSettleSeconds.
  static constexpr double kSettleSeconds = 0.25;
  // The line that would be drawn for `done` items after `elapsed_s` seconds
  // (exposed for tests).
  static std::string Render(const std::string& label, uint64_t done,
                            uint64_t total, double elapsed_s, int width);

 private:
  std::ostream& err_;
  const bool enabled_;
  const std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool drawn_ = false;
  bool ever_drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace llmcache::cli

#endif  // LLMCACHE_TOOLS_CLI_PROGRESS_H_
