// Communicator front end: argument checks, shapes of the results, routing by device, start-up, and each
// collective's event in the trace (engine/trace.h, cat "collective"). The transports live in
// mpi_backend.cpp and nccl_backend.cpp.
#include "dist/communicator.h"

#include <nlohmann/json.hpp>

#include "autograd/autograd.h"
#include "dist/store.h"
#include "engine/error.h"
#include "engine/trace.h"

namespace nabla::dist {
namespace {

class DoneWork final : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};

void check_reduction(const Tensor& t, ReduceOp op, const char* what) {
  NABLA_CHECK(t.defined(), what, ": undefined tensor");
  NABLA_CHECK(t.dtype() != DType::b8, what, ": bool tensors cannot be reduced (cast to u8 or i32)");
  NABLA_CHECK(op != ReduceOp::avg || is_floating(t.dtype()), what, ": avg of ", t.dtype(),
              " would round; use sum and divide, or a floating-point dtype");
}

Shape with_leading(int64_t n, const Shape& s) {
  Shape out{n};
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

// The transport a collective takes (as Communicator::backend_for and barrier() choose it).
std::string backend_of(const Communicator& c, const Tensor* t) {
  if (c.world_size() == 1) return "single process";
  if (t == nullptr) return c.has_cpu_backend() ? "mpi" : "nccl";  // barrier: MPI when there is MPI
  return t->defined() && t->device().is_cuda() ? "nccl" : "mpi";
}

// A collective's trace event (engine/trace.h "lanes"): begun by the constructor, added by finish() or the
// destructor (so a collective that throws still has its event). When not tracing: one branch.
// args: bytes (the tensor this rank hands in; all_gather and reduce_scatter add out_bytes), dtype, shape,
// world_size, rank, backend, and what the call adds (op, root, async).
class CollectiveEvent {
 public:
  CollectiveEvent(const Communicator& c, const char* name, const Tensor* t, nlohmann::json extra = {}) {
    if (!trace::enabled()) return;
    mark_ = trace::lane_begin();
    name_ = name;
    nlohmann::json a{{"bytes", t && t->defined() ? t->nbytes() : 0},
                     {"dtype", t && t->defined() ? dtype_name(t->dtype()) : "none"},
                     {"shape", t && t->defined() ? shape_str(t->shape()) : "[]"},
                     {"world_size", c.world_size()},
                     {"rank", c.rank()},
                     {"backend", backend_of(c, t)}};
    if (extra.is_object()) a.update(extra);
    args_ = a.dump();
  }
  ~CollectiveEvent() { finish(); }
  CollectiveEvent(CollectiveEvent&& o) noexcept
      : mark_(o.mark_), name_(std::move(o.name_)), args_(std::move(o.args_)) {
    o.mark_.lane = -1;
  }
  CollectiveEvent(const CollectiveEvent&) = delete;
  CollectiveEvent& operator=(const CollectiveEvent&) = delete;
  void finish() {
    if (mark_.lane < 0) return;
    trace::lane_end(mark_, std::move(name_), std::move(args_));
    mark_.lane = -1;
  }

 private:
  trace::LaneMark mark_;
  std::string name_, args_;
};

// all_reduce_async's Work with its event, which ends when the work is found done (wait(), a test() that
// answers true, or the destructor, which waits).
class TracedWork final : public Work {
 public:
  TracedWork(std::unique_ptr<Work> inner, CollectiveEvent event)
      : inner_(std::move(inner)), event_(std::move(event)) {}
  ~TracedWork() override {
    inner_.reset();
    event_.finish();
  }
  void wait() override {
    inner_->wait();
    event_.finish();
  }
  bool test() override {
    const bool done = inner_->test();
    if (done) event_.finish();
    return done;
  }

 private:
  std::unique_ptr<Work> inner_;
  CollectiveEvent event_;
};

}  // namespace

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::avg:
      return "avg";
    case ReduceOp::max:
      return "max";
    case ReduceOp::min:
      return "min";
  }
  return "?";
}

Communicator::Communicator(LaunchEnv env, std::unique_ptr<Backend> cpu, std::unique_ptr<Backend> cuda)
    : env_(std::move(env)), cpu_(std::move(cpu)), cuda_(std::move(cuda)) {}

Communicator::~Communicator() {
  cuda_.reset();  // NCCL first: its watchdog must stop before MPI goes
  cpu_.reset();
}

std::string Communicator::backend_names() const {
  if (world_size() == 1) return "single process";
  std::string s;
  if (cpu_) s = cpu_->name();
  if (cuda_) {
    if (!s.empty()) s += '+';
    s += cuda_->name();
  }
  return s;
}

Backend& Communicator::backend_for(const Tensor& t, const char* what) {
  if (t.device().is_cuda()) {
    NABLA_CHECK(cuda_, what, ": a CUDA tensor, but this communicator has no NCCL backend (",
                nccl_compiled() ? "initialise dist with InitOptions.device = cuda:LOCAL_RANK"
                                : "this build has no NCCL: configure with -DNABLA_NCCL=ON",
                ")");
    return *cuda_;
  }
  NABLA_CHECK(cpu_, what, ": CPU tensors need MPI, and ",
              mpi_compiled()
                  ? "this process was not started by mpirun (use mpirun -n N, or scripts/launch.sh --mpi)"
                  : "this build has no MPI (install libopenmpi-dev and configure with -DNABLA_MPI=ON)");
  return *cpu_;
}

void Communicator::all_reduce(Tensor& t, ReduceOp op) {
  check_reduction(t, op, "all_reduce");
  CollectiveEvent event(*this, "all_reduce", &t, {{"op", reduce_op_name(op)}});
  if (world_size() == 1) return;
  if (t.is_contiguous()) {
    backend_for(t, "all_reduce").all_reduce(t, op)->wait();
  } else {
    Tensor tmp = t.contiguous();
    backend_for(t, "all_reduce").all_reduce(tmp, op)->wait();
    NoGradGuard ng;
    t.copy_(tmp);
  }
}

std::unique_ptr<Work> Communicator::all_reduce_async(const Tensor& t, ReduceOp op) {
  check_reduction(t, op, "all_reduce_async");
  NABLA_CHECK(t.is_contiguous(), "all_reduce_async: the tensor must be contiguous (shape ", t.shape(), ")");
  if (!trace::enabled()) {
    if (world_size() == 1) return std::make_unique<DoneWork>();
    return backend_for(t, "all_reduce_async").all_reduce(t, op);
  }
  CollectiveEvent event(*this, "all_reduce_async", &t, {{"op", reduce_op_name(op)}, {"async", true}});
  std::unique_ptr<Work> w =
      world_size() == 1 ? std::make_unique<DoneWork>() : backend_for(t, "all_reduce_async").all_reduce(t, op);
  return std::make_unique<TracedWork>(std::move(w), std::move(event));
}

void Communicator::broadcast(Tensor& t, int root) {
  NABLA_CHECK(t.defined(), "broadcast: undefined tensor");
  NABLA_CHECK(root >= 0 && root < world_size(), "broadcast: root ", root, " is not a rank of ", world_size());
  CollectiveEvent event(*this, "broadcast", &t, {{"root", root}});
  if (world_size() == 1) return;
  if (t.is_contiguous()) {
    backend_for(t, "broadcast").broadcast(t, root)->wait();
  } else {
    Tensor tmp = t.contiguous();
    backend_for(t, "broadcast").broadcast(tmp, root)->wait();
    NoGradGuard ng;
    t.copy_(tmp);
  }
}

Tensor Communicator::all_gather(const Tensor& t) {
  NABLA_CHECK(t.defined(), "all_gather: undefined tensor");
  CollectiveEvent event(*this, "all_gather", &t, {{"out_bytes", t.nbytes() * world_size()}});
  Tensor in = t.contiguous();
  Tensor out = Tensor::empty(with_leading(world_size(), t.shape()), t.dtype(), t.device());
  if (world_size() == 1) {
    NoGradGuard ng;
    out.copy_(in.unsqueeze(0));
    return out;
  }
  backend_for(t, "all_gather").all_gather(in, out)->wait();
  return out;
}

Tensor Communicator::reduce_scatter(const Tensor& t, ReduceOp op) {
  check_reduction(t, op, "reduce_scatter");
  NABLA_CHECK(t.dim() >= 1 && t.size(0) % world_size() == 0, "reduce_scatter: dim 0 of shape ", t.shape(),
              " must be a multiple of the world size ", world_size());
  CollectiveEvent event(*this, "reduce_scatter", &t,
                        {{"op", reduce_op_name(op)}, {"out_bytes", t.nbytes() / world_size()}});
  Tensor in = t.contiguous();
  Shape s = t.shape();
  s[0] /= world_size();
  Tensor out = Tensor::empty(s, t.dtype(), t.device());
  if (world_size() == 1) {
    NoGradGuard ng;
    out.copy_(in);
    return out;
  }
  backend_for(t, "reduce_scatter").reduce_scatter(in, out, op)->wait();
  return out;
}

Tensor Communicator::all_to_all(const Tensor& t) {
  NABLA_CHECK(t.defined(), "all_to_all: undefined tensor");
  NABLA_CHECK(t.dim() >= 1 && t.size(0) % world_size() == 0, "all_to_all: dim 0 of shape ", t.shape(),
              " must be a multiple of the world size ", world_size());
  CollectiveEvent event(*this, "all_to_all", &t);
  Tensor in = t.contiguous();
  Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device());
  if (world_size() == 1) {
    NoGradGuard ng;
    out.copy_(in);
    return out;
  }
  backend_for(t, "all_to_all").all_to_all(in, out)->wait();
  return out;
}

void Communicator::barrier() {
  CollectiveEvent event(*this, "barrier", nullptr);
  if (world_size() == 1) return;
  NABLA_CHECK(cpu_ || cuda_, "barrier: this communicator has no backend");
  if (cpu_)
    cpu_->barrier();
  else
    cuda_->barrier();
}

std::shared_ptr<Communicator> init(const InitOptions& options) {
  LaunchEnv env = detect_launch_env();
  const std::string who = "dist::init (rank " + std::to_string(env.rank) + " of " +
                          std::to_string(env.world_size) + ", " + launcher_name(env.launcher) + ")";
  if (env.world_size == 1) return std::make_shared<Communicator>(env, nullptr, nullptr);

  // MPI carries CPU tensors. Under srun, MPI_Init works only when Slurm and Open MPI share PMIx; we try it
  // only for CPU runs (GPU runs under srun need nothing but NCCL and the TCP rendezvous).
  const bool want_mpi = mpi_compiled() && (env.launcher == Launcher::mpirun || mpi_is_initialized() ||
                                           (env.launcher == Launcher::slurm && options.device.is_cpu()));
  std::unique_ptr<Backend> cpu, cuda;
  if (want_mpi) cpu = make_mpi_backend(env);
  if (options.device.is_cpu()) {
    NABLA_CHECK(cpu, who, ": a CPU run with ", env.world_size,
                " processes needs MPI for its collectives, but ",
                !mpi_compiled()
                    ? "this build has no MPI (install libopenmpi-dev, configure with -DNABLA_MPI=ON)"
                    : "the processes were not started by mpirun: use mpirun -n N, or scripts/launch.sh --mpi "
                      "(docs/distributed.md)");
  } else {
    NABLA_CHECK(nccl_compiled(), who, ": device ", options.device.str(),
                " needs NCCL, and this build has none (configure with -DNABLA_NCCL=ON)");
    std::string id = env.rank == 0 ? nccl_unique_id() : std::string();
    if (cpu) {
      id = mpi_broadcast_bytes(id, static_cast<int>(nccl_unique_id_size()));
    } else {
      RendezvousOptions r{env.master_addr, env.master_port, env.rank, env.world_size, env.timeout_s};
      id = rendezvous_exchange(r, id);
    }
    cuda = make_nccl_backend(env, id, options.device.index);
  }
  return std::make_shared<Communicator>(env, std::move(cpu), std::move(cuda));
}

}  // namespace nabla::dist
