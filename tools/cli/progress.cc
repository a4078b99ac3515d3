// The progress bar of the long-running verbs. See progress.h.

#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ostream>

namespace llmcache::cli {
namespace {

int TerminalWidth() {
  struct winsize ws = {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) {
    return ws.ws_col;
  }
  return 80;
}

std::string Eta(double seconds) {
  char buf[32];
  const long s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
  }
  return buf;
}

}  // namespace

Progress::Progress(std::ostream& err, bool enabled, std::string label,
                   uint64_t total)
    : err_(err),
      enabled_(enabled),
      label_(std::move(label)),
      total_(total),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { Finish(); }

std::string Progress::Render(const std::string& label, uint64_t done,
                             uint64_t total, double elapsed_s, int width) {
  // The first moments (opening a database, starting threads) say little of
  // the rate: the first line of an import once showed 62/s and an ETA of
  // 53 minutes for what took one second. Shown once they are settled.
  const bool settled = elapsed_s >= kSettleSeconds && done > 0;
  const double rate = settled ? static_cast<double>(done) / elapsed_s : 0;
  char rate_text[32] = "-";
  if (settled) std::snprintf(rate_text, sizeof(rate_text), "%.0f", rate);
  char stats[112];
  if (total > 0) {
    const double left =
        rate > 0 && total > done ? static_cast<double>(total - done) / rate : 0;
    std::snprintf(stats, sizeof(stats), " %llu/%llu %s/s ETA %s",
                  static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(total), rate_text,
                  settled ? Eta(left).c_str() : "-");
  } else {
    std::snprintf(stats, sizeof(stats), " %llu %s/s",
                  static_cast<unsigned long long>(done), rate_text);
  }
  std::string line = label;
  if (total > 0) {
    const int bar = std::max(
        10,
        width - static_cast<int>(label.size() + std::string(stats).size()) - 4);
    const double frac =
        std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
    const int filled = static_cast<int>(frac * bar);
    line += " [";
    line.append(static_cast<size_t>(filled), '#');
    line.append(static_cast<size_t>(bar - filled), '.');
    line += "]";
  }
  line += stats;
  return line;
}

void Progress::Update(uint64_t done) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  // At most ten draws a second, also when Finish() cleared the bar in
  // between (verify prints each bad entry under it).
  if (ever_drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) {
    return;
  }
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  err_ << "\r\x1b[2K"
       << Render(label_, done_, total_, elapsed, TerminalWidth() - 1)
       << std::flush;
  drawn_ = true;
  ever_drawn_ = true;
}

void Progress::Finish() {
  if (!enabled_ || !drawn_) return;
  err_ << "\r\x1b[2K" << std::flush;
  drawn_ = false;
}

}  // namespace llmcache::cli
