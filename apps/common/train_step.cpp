// apps/common/train_step.h: the eager, device-graph and VR forms of a training step.
#include "apps/common/train_step.h"

#include <cmath>
#include <cstdio>

#include "algorithms/optim/clip.h"
#include "apps/common/accuracy.h"
#include "autograd/autograd.h"
#include "engine/device_runtime.h"
#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/loss.h"
#include "ops/nn.h"

namespace nabla::apps {

ForwardFn classifier_forward(double label_smoothing) {
  return [label_smoothing](nn::Module& model, const Tensor& inputs, const Tensor& labels) {
    ForwardOutput out;
    out.logits = model.forward(inputs);
    out.loss = cross_entropy(out.logits, labels, {.label_smoothing = label_smoothing});
    return out;
  };
}

namespace {

// VRGD's rank-mode collective: the GSNR's sum and square buffers flattened into one tensor, summed over the
// ranks with one all-reduce, and written back in place.
vrgd::AllReduceSum gsnr_all_reduce(dist::Communicator& comm) {
  return [&comm](std::vector<Tensor>& buffers) {
    if (buffers.empty()) return;
    std::vector<Tensor> flat;
    for (const Tensor& b : buffers) flat.push_back(b.reshape({-1}));
    Tensor all = cat(flat, 0);
    comm.all_reduce(all, dist::ReduceOp::sum);
    int64_t offset = 0;
    for (Tensor& b : buffers) {
      b.copy_(all.narrow(0, offset, b.numel()).view(b.shape()));
      offset += b.numel();
    }
  };
}

}  // namespace

// The forward and backward recorded once and replayed. The graph reads its batch from tensors of its own
// (each batch is copied in on the device) and leaves the logits, the loss and the parameters' gradients in
// tensors the capture made, which each replay rewrites. The gradients are put back on the parameters after
// each replay, because an eager step (a last batch of another size) replaces them.
class TrainStep::Graphed {
 public:
  bool ready() const { return graph_.captured(); }
  bool fits(const Tensor& x, const Tensor& y) const {
    return ready() && x.shape() == inputs_.shape() && x.strides() == inputs_.strides() &&
           y.shape() == labels_.shape() && x.dtype() == inputs_.dtype() && y.dtype() == labels_.dtype();
  }
  // Records the step for batches like (x, y); false (with the reason printed) if it cannot be captured.
  bool capture(nn::Module& model, optim::Optimizer& opt, const ForwardFn& forward, const Tensor& x,
               const Tensor& y, bool amp) {
    inputs_ = empty_like(x);  // same memory format
    labels_ = empty_like(y);
    inputs_.copy_(x);
    labels_.copy_(y);
    try {
      graph_.capture([&] {
        {
          AutocastGuard autocast(DType::bf16, amp);
          opt.zero_grad();
          ForwardOutput f = forward(model, inputs_, labels_);
          logits_ = f.logits;
          loss_ = f.loss;
        }
        loss_.backward();
      });
    } catch (const Error& e) {
      std::printf("note: --cuda-graph: the step cannot be captured, training eagerly: %s\n", e.what());
      inputs_ = labels_ = logits_ = loss_ = Tensor();
      return false;
    }
    grads_.clear();
    for (const Tensor& p : model.parameters())
      if (p.grad().defined()) grads_.emplace_back(p, p.grad());
    std::printf(
        "cuda graph: the forward and backward captured as %zu nodes; replayed for every batch of %s\n",
        graph_.num_nodes(), str_cat(x.shape()).c_str());
    return true;
  }
  // One forward and backward on (x, y): the gradients are on the parameters afterwards.
  void run(const Tensor& x, const Tensor& y) {
    inputs_.copy_(x);
    labels_.copy_(y);
    graph_.replay();
    for (auto& [p, g] : grads_) p.set_grad(g);
  }
  const Tensor& logits() const { return logits_; }
  const Tensor& loss() const { return loss_; }

 private:
  runtime::Graph graph_;  // captures on the current CUDA device
  Tensor inputs_, labels_, logits_, loss_;
  std::vector<std::pair<Tensor, Tensor>> grads_;  // (parameter, the gradient tensor the graph writes)
};

TrainStep::TrainStep(nn::Module& model, optim::Optimizer& optimizer, const dist::Session& session,
                     ForwardFn forward, StepOptions options)
    : model_(model), optimizer_(optimizer), session_(session), forward_(std::move(forward)), o_(options) {
  dp_ = session.data_parallel(model);
  vr_ = dynamic_cast<vrgd::VrOptimizer*>(&optimizer);
  if (vr_) {
    // VRGD partitions: micro-batches in one process; with W ranks, each rank runs vr_partitions / W of them
    // and the statistics are summed over the ranks.
    vr_local_partitions_ = o_.vr_partitions / session.world_size();
    NABLA_CHECK(vr_local_partitions_ >= 1 && vr_local_partitions_ * session.world_size() == o_.vr_partitions,
                "--gsnr-partitions ", o_.vr_partitions, " must be a multiple of the ", session.world_size(),
                " data-parallel ranks");
  }
  if (o_.cuda_graph && !vr_) {
    if (session.active())
      std::printf(
          "note: --cuda-graph is not used with several processes (data-parallel); training eagerly\n");
    else
      graph_ = std::make_unique<Graphed>();
  }
}

TrainStep::~TrainStep() = default;

std::string TrainStep::describe(int64_t local_batch) const {
  if (!vr_) return "";
  return str_cat(
      "VRGD: ", o_.vr_partitions, " partitions of ", local_batch / vr_local_partitions_,
      " examples per step (",
      session_.active() ? str_cat(vr_local_partitions_, " per rank") : std::string("micro-batches"),
      "), gamma ", vr_->gsnr().options().gamma);
}

StepResult TrainStep::run(const Tensor& inputs, const Tensor& targets, double lr, bool want_stats) {
  optimizer_.set_lr(lr);
  StepResult r = vr_ ? vr_step(inputs, targets, want_stats) : eager(inputs, targets);
  ++steps_run_;
  return r;
}

StepResult TrainStep::eager(const Tensor& inputs, const Tensor& labels) {
  Tensor logits, loss;
  // --cuda-graph: capture at the second step of the run (the first chose cuDNN's algorithms).
  if (graph_ && !graph_->ready() && steps_run_ > 0 &&
      !graph_->capture(model_, optimizer_, forward_, inputs, labels, o_.amp))
    graph_.reset();
  if (graph_ && graph_->fits(inputs, labels)) {
    graph_->run(inputs, labels);
    logits = graph_->logits();
    loss = graph_->loss();
  } else {
    {
      AutocastGuard autocast(DType::bf16, o_.amp);
      ForwardOutput f = forward_(model_, inputs, labels);
      logits = f.logits;
      loss = f.loss;
    }
    optimizer_.zero_grad();
    loss.backward();
  }
  if (dp_) dp_->finish();  // gradients averaged over the ranks
  StepResult r;
  if (o_.clip > 0) r.grad_norm = optim::clip_grad_norm(model_.parameters(), o_.clip);
  optimizer_.step();
  r.loss_device = loss.detach();
  if (!o_.read_results) {
    r.loss = NAN;
    r.correct = -1;
    return r;
  }
  r.loss = loss.item();
  if (logits.defined()) r.correct = static_cast<int64_t>(topk_correct(logits.detach(), labels, 1).item());
  return r;
}

StepResult TrainStep::run_accumulated(int64_t micro_batches, const MicroBatchFn& batch, double lr) {
  NABLA_CHECK(micro_batches >= 1, "TrainStep: ", micro_batches, " micro-batches; expected at least 1");
  NABLA_CHECK(!vr_, "TrainStep: gradient accumulation is not for the VR optimizers (they take partitions)");
  optimizer_.set_lr(lr);
  optimizer_.zero_grad();
  const double scale = 1.0 / static_cast<double>(micro_batches);
  StepResult r;
  for (int64_t m = 0; m < micro_batches; ++m) {
    auto [inputs, targets] = batch(m);
    Tensor loss;
    {
      AutocastGuard autocast(DType::bf16, o_.amp);
      loss = forward_(model_, inputs, targets).loss;
    }
    if (micro_batches > 1) loss = loss * scale;
    // The all-reduce starts during the last micro-batch's backward, on the accumulated gradients.
    if (dp_ && m + 1 < micro_batches) {
      auto local = dp_->no_sync();
      loss.backward();
    } else {
      loss.backward();
    }
    r.loss += loss.item();
  }
  if (dp_) dp_->finish();  // the accumulated gradients averaged over the ranks
  if (o_.clip > 0) r.grad_norm = optim::clip_grad_norm(model_.parameters(), o_.clip);
  optimizer_.step();
  ++steps_run_;
  return r;
}

StepResult TrainStep::vr_step(const Tensor& inputs, const Tensor& labels, bool want_stats) {
  VrStepResult v;
  AutocastGuard autocast(DType::bf16, o_.amp);
  if (dp_) {
    auto local = dp_->no_sync();  // the GSNR needs each rank's own gradient; its all-reduce sums them
    v = vr_forward_backward(vr_->gsnr(), model_, inputs, labels, vr_local_partitions_, forward_, want_stats,
                            gsnr_all_reduce(*session_.communicator()), session_.world_size());
  } else {
    v = vr_forward_backward(vr_->gsnr(), model_, inputs, labels, vr_local_partitions_, forward_, want_stats);
  }
  if (want_stats)
    gsnr_record_ = gsnr_stats_record(vr_->gsnr(), 0);  // before the step, as the reduce left them
  StepResult r{v.loss, v.correct};
  if (o_.clip > 0) r.grad_norm = optim::clip_grad_norm(model_.parameters(), o_.clip);
  optimizer_.step();
  return r;
}

void TrainStep::sync_buffers() {
  if (dp_) dp_->broadcast_buffers();
}

nlohmann::json TrainStep::gsnr_record(int64_t step) const {
  NABLA_CHECK(vr_ && !gsnr_record_.is_null(),
              "TrainStep: no GSNR statistics (a VR optimizer and a step with "
              "want_stats)");
  nlohmann::json r = gsnr_record_;
  r["step"] = step;
  return r;
}

void check_loss(double loss, int64_t step, bool allow) {
  if (std::isfinite(loss) || allow) return;
  fail("step ", step, ": the loss is ", loss,
       " (the run diverged: lower --lr, warm up longer or clip with --clip; --allow-nonfinite goes on)");
}

}  // namespace nabla::apps
