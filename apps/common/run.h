// What every training binary sets up before its loop and checks inside it, in one place:
//
//   apps::RunOptions ro;            apps::add_run_options(cli, ro);        // --device, --amp, --seed, ...
//   apps::Run run = apps::Run::start(ro, o.batch_size);                    // session, device, threads,
//   signals
//   ... model->to(run.device()) ...
//   apps::TrainState state = run.resume(*model, *optimizer, spe, epochs);  // --resume, range-checked
//   apps::TrainLog log(run, total_steps, epochs);                          // progress line, JSONL,
//   throughput for (...) { ...; log.step(...); if (run.stop_requested(step)) { run.save(...); return
//   run.stop_code(); } }
//
// - Device and precision: --device cpu|cuda[:N] (checked against the build and the machine), --amp off|bf16,
//   --threads (OpenMP), --seed (the default generator; the loaders take the same seed).
// - Data-parallel: dist::Session::start (docs/distributed.md) turns the global --batch-size into this rank's
//   share; ranks other than 0 keep no checkpoint, metrics or progress line.
// - Checkpoints: --checkpoint FILE is written atomically (a temporary file, fsync, rename); a `FILE.tmp` left
//   by a run killed while writing is removed at start-up. --resume FILE restores model, optimizer, RNG and
//   loader position, each field range-checked against this run (apps/common/checkpoint.h).
// - Signals: SIGINT (Ctrl-C) and SIGTERM only set a flag; the loop sees it after the current step, writes a
//   checkpoint (with --checkpoint) and exits with 128 + the signal number (130, 143), so a job scheduler's
//   preemption loses at most one step. A second Ctrl-C kills at once. In a data-parallel run the ranks
//   agree on the flag every kStopCheckEvery steps (one tiny all-reduce), so they stop at the same step.
// - Non-finite loss: the run stops with an error naming the step unless --allow-nonfinite.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "apps/common/checkpoint.h"
#include "apps/common/options.h"
#include "apps/common/progress.h"
#include "dist/session.h"

namespace nabla::apps {

// Exit code of a run stopped by a signal: 128 + the signal, as a shell reports it.
constexpr int kExitSignalBase = 128;
// Exit code of a run that failed (bad data, a diverged loss, a bad checkpoint).
constexpr int kExitFailure = 1;

struct RunOptions {
  std::string device = "cpu", amp = "off";
  int64_t threads = 0;
  uint64_t seed = 0;
  std::string checkpoint, resume, metrics;
  int64_t print_every = 100;
  bool no_progress = false, allow_nonfinite = false;
};

// Declares --device --amp --threads --seed --checkpoint --resume --metrics --print-every --no-progress
// --allow-nonfinite under the section "Run".
void add_run_options(OptionSet& cli, RunOptions& o);
// Their checks beyond each option's own (call from the binary's OptionSet::parse validator).
void check_run_options(const RunOptions& o);

// Checked arithmetic for sizes that come from outside (options, files): nabla::checked_mul in
// engine/checked.h.
// steps_per_epoch x epochs, capped at max_steps (0: no cap), without overflow.
int64_t total_steps(int64_t steps_per_epoch, int64_t epochs, int64_t max_steps);

class Run {
 public:
  static constexpr int64_t kStopCheckEvery = 10;

  // Starts the data-parallel session (rewriting `global_batch` to this rank's share), sets the threads
  // and seed, checks the device and the --resume file, removes a stale checkpoint temporary and installs
  // the signal handlers (removed again by the destructor).
  static Run start(RunOptions& o, int64_t& global_batch);
  Run(Run&&) noexcept;
  ~Run();

  const RunOptions& options() const { return o_; }
  const dist::Session& session() const { return session_; }
  Device device() const { return device_; }
  bool amp() const { return o_.amp == "bf16"; }
  bool is_main() const { return session_.is_main(); }

  // --resume: loads the checkpoint into model and optimizer, restores the default generator and returns
  // the state, range-checked against this run (steps per epoch, epochs, seed; the generator's offset at
  // least where model initialisation left it). Without --resume: a fresh state.
  TrainState resume(nn::Module& model, optim::Optimizer& optimizer, int64_t steps_per_epoch, int64_t epochs);
  // Writes --checkpoint (nothing on ranks other than 0 or without --checkpoint); prints where.
  void save(const nn::Module& model, const optim::Optimizer& optimizer, const TrainState& state) const;

  // Whether SIGINT/SIGTERM arrived (all ranks agree: checked every kStopCheckEvery steps when
  // data-parallel). `step`: the steps taken so far.
  bool stop_requested(int64_t step);
  int stop_code() const { return kExitSignalBase + stop_signal_; }
  int stop_signal() const { return stop_signal_; }

 private:
  Run() = default;
  RunOptions o_;
  dist::Session session_;
  Device device_ = Device::cpu();
  int stop_signal_ = 0;
  bool handlers_ = false;
};

// The progress line, the JSONL metrics and the throughput summary of a training loop.
class TrainLog {
 public:
  // unit: what a step's `items` are, per second ("img/s"; "tok/s" for language models). The metrics key is
  // the unit with "/" spelt "_per_" ("img_per_s", "tok_per_s").
  TrainLog(const Run& run, int64_t total_steps, int64_t epochs, const std::string& unit = "img/s");
  // Whether step number `step` (1-based) writes a metrics record (every 10th and the last).
  bool records(int64_t step) const { return metrics_.enabled() && (step % 10 == 0 || step == total_); }
  // After step number `step` (1-based) of `epoch` (0-based): `items` examples over all ranks in `seconds`.
  void step(int64_t step, int64_t epoch, double loss, double lr, int64_t items, double seconds);
  void write(const nlohmann::json& record) { metrics_.write(record); }
  void finish_line() { progress_.finish_line(); }
  // "throughput: 5,310 img/s (median step ...)": the median step after the warm-up steps (the first
  // quarter, at most 20: cuDNN's algorithm search, the allocator's first allocations, the loader's start).
  void summary();
  double elapsed() const;

 private:
  int64_t total_, epochs_;
  Progress progress_;
  MetricsLog metrics_;
  std::vector<double> seconds_;
  int64_t items_per_step_ = 0;
  std::string unit_, unit_key_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace nabla::apps
