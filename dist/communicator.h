// dist::Communicator: collectives over the processes of a job, one interface for CPU and CUDA tensors.
//
//   all_reduce      every rank ends with op(x_0, ..., x_{W-1}) elementwise (sum, avg = sum / W, max, min)
//   broadcast       every rank ends with root's tensor
//   all_gather      [s...] on each rank -> [W, s...] on every rank, row r from rank r
//   reduce_scatter  [W*k, s...] -> [k, s...]: rank r gets rows r*k..(r+1)*k of the reduction
//   all_to_all      [W*k, s...] -> [W*k, s...]: chunk j of rank i lands in chunk i of rank j
//   barrier         nobody leaves before everyone has arrived
//
// Transport by the tensor's device: CUDA tensors go over NCCL (one communicator on this rank's device, its
// own stream, ordered against the compute stream with CUDA events: the call returns once the work is
// queued, and later work on the compute stream sees the result), CPU tensors over MPI (MPI_COMM_WORLD).
// A world of one process needs neither and every collective is the identity.
//
// Dtypes: f32 f64 bf16 f16 i32 i64 u8 for reductions (avg only for floating point: an integer average would
// round, so it is refused); any dtype, bool included, for broadcast, all_gather and all_to_all (they move
// bytes). MPI has no 16-bit float types: bf16 and f16 travel as 16-bit words and are reduced by our own
// MPI_Ops, which widen each pair to f32, combine and round back (round to nearest even), like NCCL does
// per step; avg is a sum followed by a multiplication by 1/W (one more rounding for 16-bit types).
//
// Failure: every wait is bounded by NABLA_DIST_TIMEOUT (dist/env.h). MPI collectives are waited on with
// MPI_Test and throw a nabla::Error after the timeout (mpirun then ends the other ranks: Open MPI aborts
// a job when one process exits non-zero). NCCL communicators are created non-blocking and a watchdog
// thread polls ncclCommGetAsyncError and the completion of every queued collective; on an error or a
// collective older than the timeout it prints what happened, calls ncclCommAbort and ends the process
// (exit code 3): the host thread may be stuck behind the GPU, so there is no one to throw to.
#pragma once
#include <memory>
#include <string>

#include "dist/env.h"
#include "engine/tensor.h"

namespace nabla::dist {

enum class ReduceOp { sum, avg, max, min };
const char* reduce_op_name(ReduceOp op);

// A collective in flight. wait(): for CPU tensors returns when the result is in the tensor; for CUDA
// tensors makes the compute stream wait for it (no host synchronisation). The Work keeps its tensors
// alive until it is waited on or destroyed; destroying an unwaited Work waits.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;  // drives progress; true once finished (a CUDA collective: once it ran)
};

// One transport. Tensors handed to it are contiguous, on its device, and checked by Communicator.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual std::unique_ptr<Work> all_reduce(const Tensor& t, ReduceOp op) = 0;
  virtual std::unique_ptr<Work> broadcast(const Tensor& t, int root) = 0;
  virtual std::unique_ptr<Work> all_gather(const Tensor& in, const Tensor& out) = 0;
  virtual std::unique_ptr<Work> reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) = 0;
  virtual std::unique_ptr<Work> all_to_all(const Tensor& in, const Tensor& out) = 0;
  virtual void barrier() = 0;
};

struct InitOptions {
  // The device this rank computes on. cuda:N creates the NCCL communicator on it (eagerly: creation is
  // collective); cpu needs MPI when the world has more than one process.
  Device device = Device::cpu();
  // Only used when no launcher variables are set: lets tests and tools build a group by hand.
  bool use_mpi_when_available = true;
};

class Communicator {
 public:
  Communicator(LaunchEnv env, std::unique_ptr<Backend> cpu, std::unique_ptr<Backend> cuda);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  int local_rank() const { return env_.local_rank; }
  const LaunchEnv& env() const { return env_; }
  bool has_cpu_backend() const { return world_size() == 1 || cpu_ != nullptr; }
  bool has_cuda_backend() const { return world_size() == 1 || cuda_ != nullptr; }
  // "mpi", "nccl", "mpi+nccl" or "single process".
  std::string backend_names() const;

  // In place. Non-contiguous tensors go through a contiguous copy (the sync forms only).
  void all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum);
  std::unique_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op = ReduceOp::sum);  // t contiguous
  void broadcast(Tensor& t, int root = 0);
  Tensor all_gather(const Tensor& t);
  Tensor reduce_scatter(const Tensor& t, ReduceOp op = ReduceOp::sum);
  Tensor all_to_all(const Tensor& t);
  void barrier();

 private:
  Backend& backend_for(const Tensor& t, const char* what);
  LaunchEnv env_;
  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<Backend> cuda_;
};

// Reads the launcher's environment (dist/env.h) and connects this process to its peers: MPI for CPU
// tensors when started by mpirun (or srun with the CPU device), NCCL on options.device for CUDA tensors
// (unique id sent by MPI_Bcast under MPI, else through the TCP rendezvous of dist/store.h on
// MASTER_ADDR:MASTER_PORT). Every rank must call it. A world of one process returns at once.
std::shared_ptr<Communicator> init(const InitOptions& options = {});

// ---- backends (dist/mpi_backend.cpp, dist/nccl_backend.cpp) -------------------------------------------
bool mpi_compiled();
bool nccl_compiled();
// MPI_COMM_WORLD; initialises MPI when nobody has (and finalises it at exit unless the process is
// unwinding from an error). Checks that MPI's size and rank agree with `env`.
std::unique_ptr<Backend> make_mpi_backend(const LaunchEnv& env);
bool mpi_is_initialized();
// A unique id from rank 0 to everyone over MPI (rank 0's `bytes` are returned on every rank).
std::string mpi_broadcast_bytes(const std::string& bytes, int size);
// NCCL's unique id (rank 0 creates it) and the communicator on `device`.
std::string nccl_unique_id();
size_t nccl_unique_id_size();
std::unique_ptr<Backend> make_nccl_backend(const LaunchEnv& env, const std::string& unique_id, int device);

}  // namespace nabla::dist
