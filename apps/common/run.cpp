// apps/common/run.h: run set-up, resume, checkpoints on signals, and the training log.
#include "apps/common/run.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <limits>

#include "engine/device_runtime.h"
#include "engine/random.h"

namespace nabla::apps {
namespace {

// The signal that asked the run to stop (0: none). Set by the handler, read by the loop.
volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
  // A second Ctrl-C kills at once: the default action is back.
  std::signal(sig, SIG_DFL);
}

}  // namespace

void add_run_options(OptionSet& cli, RunOptions& o) {
  cli.section("Run");
  cli.add("device", &o.device, o.device,
          "cpu | cuda | cuda:N (with several processes, cuda is cuda:LOCAL_RANK)")
      .value_name("DEV")
      .check([](const std::string& s) {
        try {
          (void)Device::parse(s);
        } catch (const Error&) {
          return str_cat("'", s, "' is not a device (expected cpu, cuda or cuda:N)");
        }
        return std::string();
      });
  cli.add("amp", &o.amp, o.amp,
          "off | bf16: autocast for forward and loss on CUDA (weights and optimizer stay f32)");
  cli.add("threads", &o.threads, o.threads, "CPU threads (0: OMP_NUM_THREADS or all cores)")
      .in_range(0, 4096);
  cli.add("seed", &o.seed, o.seed, "seed of every random draw (initialisation, shuffling, augmentation)");
  cli.add("checkpoint", &o.checkpoint, o.checkpoint,
          "write a checkpoint to FILE after every epoch and on Ctrl-C / SIGTERM (atomically)")
      .value_name("FILE");
  cli.add("resume", &o.resume, o.resume,
          "continue from this checkpoint (model, optimizer, RNG, data position: bit-identical)")
      .value_name("FILE");
  cli.add("metrics", &o.metrics, o.metrics, "append JSONL metrics to FILE (every 10 steps and every epoch)")
      .value_name("FILE");
  cli.add("print-every", &o.print_every, o.print_every, "steps between progress lines when not on a terminal")
      .positive()
      .unit("steps");
  cli.add_switch("no-progress", &o.no_progress, "no progress line");
  cli.add_switch("allow-nonfinite", &o.allow_nonfinite,
                 "go on when the loss becomes NaN or infinite (by default the run stops, naming the step)");
}

void check_run_options(const RunOptions& o) {
  NABLA_CHECK(o.amp == "off" || o.amp == "bf16", "--amp ", o.amp, ": expected off or bf16");
}

int64_t total_steps(int64_t steps_per_epoch, int64_t epochs, int64_t max_steps) {
  int64_t total = 0;
  if (__builtin_mul_overflow(steps_per_epoch, epochs, &total)) {
    NABLA_CHECK(max_steps > 0, "--epochs ", epochs, " x ", steps_per_epoch,
                " steps per epoch does not fit a 64-bit step count (give fewer --epochs, or --max-steps)");
    return max_steps;
  }
  return max_steps > 0 ? std::min(total, max_steps) : total;
}

Run Run::start(RunOptions& o, int64_t& global_batch) {
  Run r;
  r.session_ = dist::Session::start(o.device, global_batch);
  if (!r.session_.is_main()) o.checkpoint.clear(), o.metrics.clear(), o.no_progress = true;
  r.o_ = o;
  r.device_ = Device::parse(o.device);
  runtime::require_device(r.device_, ("--device " + o.device).c_str());
  if (o.threads > 0) omp_set_num_threads(static_cast<int>(o.threads));
  manual_seed(o.seed);
  if (!o.resume.empty()) check_checkpoint_file(o.resume, "--resume");
  if (!o.checkpoint.empty() && remove_stale_temporary(o.checkpoint))
    std::printf("note: removed %s.tmp, left by a run stopped while writing its checkpoint\n",
                o.checkpoint.c_str());
  if (r.amp() && r.device_.is_cpu())
    std::printf("note: --amp bf16 changes nothing on the CPU (autocast is CUDA-only)\n");
  g_stop_signal = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  r.handlers_ = true;
  return r;
}

Run::Run(Run&& other) noexcept
    : o_(std::move(other.o_)),
      session_(std::move(other.session_)),
      device_(other.device_),
      stop_signal_(other.stop_signal_),
      handlers_(other.handlers_) {
  other.handlers_ = false;
}

Run::~Run() {
  if (!handlers_) return;
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

TrainState Run::resume(nn::Module& model, optim::Optimizer& optimizer, int64_t steps_per_epoch,
                       int64_t epochs) {
  TrainState state;
  state.rng = default_generator();
  if (o_.resume.empty()) return state;
  const uint64_t init_offset = default_generator().offset;  // where the model's initialisation left it
  state = load_checkpoint(o_.resume, model, optimizer);
  check_against_run(o_.resume, state, steps_per_epoch, epochs, o_.seed, init_offset);
  default_generator() = state.rng;
  std::printf("resumed from %s at step %lld (epoch %lld, batch %lld)\n", o_.resume.c_str(),
              static_cast<long long>(state.step), static_cast<long long>(state.loader.epoch),
              static_cast<long long>(state.loader.batch));
  return state;
}

void Run::save(const nn::Module& model, const optim::Optimizer& optimizer, const TrainState& state) const {
  if (o_.checkpoint.empty()) return;
  save_checkpoint(o_.checkpoint, model, optimizer, state);
  std::printf("checkpoint written to %s\n", o_.checkpoint.c_str());
  std::fflush(stdout);
}

bool Run::stop_requested(int64_t step) {
  if (stop_signal_) return true;
  if (!session_.active()) {
    stop_signal_ = g_stop_signal;
  } else if (step % kStopCheckEvery == 0) {
    double sig = g_stop_signal;  // the ranks agree: the largest signal number any of them got
    std::vector<double> v{sig};
    session_.sum_vector(v);  // a sum of signal numbers is not one: take any rank's own, or SIGTERM
    if (v[0] > 0) stop_signal_ = g_stop_signal ? static_cast<int>(g_stop_signal) : SIGTERM;
  }
  if (stop_signal_ && is_main())
    std::printf("\nstopping at step %lld on signal %d (%s)%s\n", static_cast<long long>(step), stop_signal_,
                stop_signal_ == SIGINT    ? "SIGINT"
                : stop_signal_ == SIGTERM ? "SIGTERM"
                                          : "signal",
                o_.checkpoint.empty() ? "; no --checkpoint given, nothing is saved" : "");
  return stop_signal_ != 0;
}

TrainLog::TrainLog(const Run& run, int64_t total_steps, int64_t epochs, const std::string& unit)
    : total_(total_steps),
      epochs_(epochs),
      progress_(total_steps, run.options().print_every, !run.options().no_progress),
      metrics_(run.options().metrics.empty() ? MetricsLog() : MetricsLog(run.options().metrics)),
      unit_(unit) {
  progress_.set_unit(unit);
  unit_key_ = unit;
  const size_t slash = unit_key_.find('/');
  if (slash != std::string::npos) unit_key_.replace(slash, 1, "_per_");
}

void TrainLog::step(int64_t step, int64_t epoch, double loss, double lr, int64_t items, double seconds) {
  seconds_.push_back(seconds);
  items_per_step_ = items;
  progress_.step(step, epoch + 1, epochs_, loss, lr, items, seconds);
  if (records(step))
    metrics_.write({{"kind", "step"},
                    {"step", step},
                    {"epoch", epoch},
                    {"loss", loss},
                    {"lr", lr},
                    {"step_ms", seconds * 1e3},
                    {unit_key_, static_cast<double>(items) / seconds}});
}

void TrainLog::summary() {
  const size_t skip = std::min<size_t>(20, seconds_.size() / 4);
  if (seconds_.size() <= skip || items_per_step_ == 0) return;
  std::vector<double> timed(seconds_.begin() + static_cast<std::ptrdiff_t>(skip), seconds_.end());
  std::nth_element(timed.begin(), timed.begin() + static_cast<std::ptrdiff_t>(timed.size() / 2), timed.end());
  const double median = timed[timed.size() / 2];
  std::printf("throughput: %s %s (median step %.2f ms over %zu steps, %zu warm-up steps excluded)\n",
              with_commas(static_cast<double>(items_per_step_) / median).c_str(), unit_.c_str(), median * 1e3,
              timed.size(), skip);
  metrics_.write({{"kind", "summary"},
                  {"median_step_ms", median * 1e3},
                  {unit_key_, static_cast<double>(items_per_step_) / median},
                  {"timed_steps", timed.size()},
                  {"warmup_steps", skip}});
}

double TrainLog::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

}  // namespace nabla::apps
