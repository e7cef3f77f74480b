// The step line and the metrics file shared by the training binaries.
//
//   step 120/938 | epoch 1/10 | loss 0.4123 | lr 1.0e-02 | 12 ms | 5,310 img/s | ETA 0:01:45
// On a terminal the line redraws in place (a live bar); otherwise (logs, CI) it prints every `every`
// steps. MetricsLog appends one JSON object per line (JSONL) and flushes, so a crash loses nothing.
// A training loop drives both through apps::TrainLog (apps/common/run.h), which adds the step records and
// the throughput summary.
#pragma once
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace nabla::apps {

std::string with_commas(double v);            // 9930.4 -> "9,930"
std::string format_duration(double seconds);  // 105 -> "0:01:45"

class Progress {
 public:
  Progress(int64_t total_steps, int64_t print_every = 50, bool enabled = true);
  // Records one step: `items` examples took `seconds`.
  void step(int64_t step, int64_t epoch, int64_t epochs, double loss, double lr, int64_t items,
            double seconds);
  // Ends the live line (call before printing anything else).
  void finish_line();
  // What `items` counts, per second in the line: "img/s" (the default), "tok/s" for language models.
  void set_unit(std::string unit) { unit_ = std::move(unit); }
  const std::string& unit() const { return unit_; }

 private:
  int64_t total_, every_;
  bool enabled_, live_;
  bool dirty_ = false;
  double smoothed_step_s_ = 0;
  std::string unit_ = "img/s";
};

class MetricsLog {
 public:
  MetricsLog() = default;
  explicit MetricsLog(const std::string& path);  // appends; throws naming the path if it cannot open
  bool enabled() const { return out_.is_open(); }
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
};

}  // namespace nabla::apps
