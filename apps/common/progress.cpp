#include "apps/common/progress.h"

#include <unistd.h>

#include <cmath>

#include "engine/error.h"

namespace nabla::apps {

std::string with_commas(double v) {
  std::string s = std::to_string(static_cast<long long>(std::llround(v)));
  int start = s[0] == '-' ? 1 : 0;
  for (int i = static_cast<int>(s.size()) - 3; i > start; i -= 3) s.insert(i, ",");
  return s;
}

std::string format_duration(double seconds) {
  long long t = std::llround(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
  return buf;
}

Progress::Progress(int64_t total, int64_t every, bool enabled)
    : total_(total),
      every_(std::max<int64_t>(1, every)),
      enabled_(enabled),
      live_(enabled && isatty(STDERR_FILENO)) {}

void Progress::step(int64_t step, int64_t epoch, int64_t epochs, double loss, double lr, int64_t items,
                    double seconds) {
  smoothed_step_s_ = smoothed_step_s_ == 0 ? seconds : 0.9 * smoothed_step_s_ + 0.1 * seconds;
  if (!enabled_) return;
  if (!live_ && step % every_ != 0 && step != total_) return;
  double eta = smoothed_step_s_ * static_cast<double>(std::max<int64_t>(0, total_ - step));
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "step %lld/%lld | epoch %lld/%lld | loss %.4f | lr %.1e | %.0f ms | %s %s | ETA %s",
                static_cast<long long>(step), static_cast<long long>(total_), static_cast<long long>(epoch),
                static_cast<long long>(epochs), loss, lr, seconds * 1e3,
                with_commas(static_cast<double>(items) / std::max(seconds, 1e-9)).c_str(), unit_.c_str(),
                format_duration(eta).c_str());
  if (live_) {
    std::fprintf(stderr, "\r\033[K%s", buf);
    dirty_ = true;
  } else {
    std::fprintf(stderr, "%s\n", buf);
  }
  std::fflush(stderr);
}

void Progress::finish_line() {
  if (dirty_) std::fprintf(stderr, "\n");
  dirty_ = false;
}

MetricsLog::MetricsLog(const std::string& path) {
  out_.open(path, std::ios::app);
  NABLA_CHECK(out_.is_open(), "metrics: cannot open '", path, "' for appending");
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!out_.is_open()) return;
  out_ << record.dump() << "\n";
  out_.flush();
}

}  // namespace nabla::apps
