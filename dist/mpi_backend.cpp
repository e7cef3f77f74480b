// MPI transport for CPU tensors (communicator.h): non-blocking MPI-3 collectives on MPI_COMM_WORLD, waited
// on with MPI_Test under the NABLA_DIST_TIMEOUT deadline.
//
// bf16 / f16: MPI has no such types, so they travel as MPI_UINT16_T and are reduced by user-defined,
// commutative MPI_Ops (one per dtype and op) that widen to f32, combine, and round back to nearest even.
// avg = sum, then a multiplication by 1/W when the request completes (in f64 for f64, else in f32).
// Counts above INT_MAX elements (MPI's int counts) are split into several requests for all_reduce and
// broadcast; the other collectives refuse them.
//
// Finalisation: when this file initialised MPI, it finalises it at exit, unless an exception is unwinding
// (MPI_Finalize synchronises with the other ranks, which would hang behind a rank that failed; exiting
// without it lets mpirun end the job).
#include <chrono>
#include <climits>
#include <cstdlib>
#include <exception>
#include <algorithm>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "engine/error.h"

#ifdef NABLA_HAS_MPI
#include <mpi.h>
#endif

namespace nabla::dist {

#ifndef NABLA_HAS_MPI
bool mpi_compiled() { return false; }
bool mpi_is_initialized() { return false; }
std::unique_ptr<Backend> make_mpi_backend(const LaunchEnv&) {
  fail("dist: this build has no MPI (install libopenmpi-dev and configure with -DNABLA_MPI=ON)");
}
std::string mpi_broadcast_bytes(const std::string&, int) { fail("dist: this build has no MPI"); }
#else
bool mpi_compiled() { return true; }
bool mpi_is_initialized() {
  int on = 0, done = 0;
  MPI_Initialized(&on);
  MPI_Finalized(&done);
  return on && !done;
}

namespace {
using Clock = std::chrono::steady_clock;

void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("dist (mpi): ", what, " failed: ", std::string(msg, len));
}

template <class T, class From, class To>
void reduce16(void* in, void* inout, int* len, int op, From from, To to) {
  auto* a = static_cast<const T*>(in);
  auto* b = static_cast<T*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = from(a[i]), y = from(b[i]);
    const float r = op == 0 ? x + y : op == 1 ? (x > y || x != x ? x : y) : (x < y || x != x ? x : y);
    b[i] = to(r);
  }
}
#define NABLA_MPI_OP16(name, T, from, to, k) \
  void name(void* in, void* inout, int* len, MPI_Datatype*) { reduce16<T>(in, inout, len, k, from, to); }
NABLA_MPI_OP16(bf16_sum, bf16, from_bf16, to_bf16, 0)
NABLA_MPI_OP16(bf16_max, bf16, from_bf16, to_bf16, 1)
NABLA_MPI_OP16(bf16_min, bf16, from_bf16, to_bf16, 2)
NABLA_MPI_OP16(f16_sum, f16, from_f16, to_f16, 0)
NABLA_MPI_OP16(f16_max, f16, from_f16, to_f16, 1)
NABLA_MPI_OP16(f16_min, f16, from_f16, to_f16, 2)
#undef NABLA_MPI_OP16

struct Ops16 {
  MPI_Op op[2][3];  // [bf16, f16][sum, max, min]
  Ops16() {
    MPI_User_function* fns[2][3] = {{bf16_sum, bf16_max, bf16_min}, {f16_sum, f16_max, f16_min}};
    for (int d = 0; d < 2; ++d)
      for (int k = 0; k < 3; ++k)
        mpi_check(MPI_Op_create(fns[d][k], /*commute=*/1, &op[d][k]), "MPI_Op_create");
  }
};

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::bf16:
    case DType::f16:
      return MPI_UINT16_T;
    case DType::i32:
      return MPI_INT32_T;
    case DType::i64:
      return MPI_INT64_T;
    case DType::u8:
    case DType::b8:
      return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

// Multiplies every element by s in place (avg after a sum).
void scale(const Tensor& t, double s) {
  visit_dtype(t.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_same_v<T, bool>) {
      return;
    } else {
      T* p = static_cast<T*>(t.data_ptr());
      const int64_t n = t.numel();
      if constexpr (std::is_same_v<T, double>) {
        for (int64_t i = 0; i < n; ++i) p[i] *= s;
      } else {
        const float f = static_cast<float>(s);
        for (int64_t i = 0; i < n; ++i) p[i] = from_double<T>(static_cast<float>(to_double(p[i])) * f);
      }
    }
  });
}

int checked_count(int64_t n, const char* what) {
  NABLA_CHECK(n <= INT_MAX, "dist (mpi): ", what, " of ", n, " elements: MPI counts stop at ", INT_MAX);
  return static_cast<int>(n);
}

class MpiWork final : public Work {
 public:
  MpiWork(std::vector<Tensor> keep, double timeout_s, std::string what)
      : keep_(std::move(keep)), timeout_s_(timeout_s), what_(std::move(what)), start_(Clock::now()) {}
  ~MpiWork() override {
    if (!done_ && !std::uncaught_exceptions()) {
      try {
        wait();
      } catch (...) {
      }
    }
  }
  std::vector<MPI_Request> requests;
  double scale_by = 1.0;  // avg: 1/W after completion

  bool test() override {
    if (done_) return true;
    int flag = 0;
    mpi_check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &flag, MPI_STATUSES_IGNORE),
              what_.c_str());
    if (flag) finish();
    return done_;
  }
  void wait() override {
    // Spin briefly (a collective of a few KB finishes in microseconds), then sleep between tests, 50 us
    // doubling to 4 ms: a peer that is stopped or slow must not cost a core per waiting rank (a yield loop
    // kept one at 86%), and ranks are often oversubscribed on CI machines.
    int64_t spins = 0;
    auto nap = std::chrono::microseconds(50);
    while (!test()) {
      if (++spins < 64) continue;
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::microseconds(4000));
      if (spins % 16 == 0) {
        const double waited = std::chrono::duration<double>(Clock::now() - start_).count();
        NABLA_CHECK(waited < timeout_s_, "dist (mpi): ", what_, " did not complete within ", timeout_s_,
                    " s; a peer is stuck or gone (timeout: NABLA_DIST_TIMEOUT)");
      }
    }
  }

 private:
  void finish() {
    done_ = true;
    if (scale_by != 1.0) scale(keep_[0], scale_by);
    keep_.clear();
  }
  std::vector<Tensor> keep_;
  double timeout_s_;
  std::string what_;
  Clock::time_point start_;
  bool done_ = false;
};

class MpiBackend final : public Backend {
 public:
  MpiBackend(const LaunchEnv& env, bool owns) : env_(env), owns_(owns) {}
  ~MpiBackend() override {
    for (auto& row : ops_.op)
      for (auto& op : row) MPI_Op_free(&op);
    if (owns_ && std::uncaught_exceptions() == 0) MPI_Finalize();
  }
  const char* name() const override { return "mpi"; }

  std::unique_ptr<Work> all_reduce(const Tensor& t, ReduceOp op) override {
    auto w = work({t}, "all_reduce");
    char* p = static_cast<char*>(t.data_ptr());
    const int64_t chunk = INT_MAX / 2;
    for (int64_t off = 0; off < t.numel(); off += chunk) {
      const int n = static_cast<int>(std::min(chunk, t.numel() - off));
      w->requests.emplace_back();
      mpi_check(MPI_Iallreduce(MPI_IN_PLACE, p + off * t.itemsize(), n, mpi_type(t.dtype()),
                               mpi_op(op, t.dtype()), MPI_COMM_WORLD, &w->requests.back()),
                "MPI_Iallreduce");
    }
    if (op == ReduceOp::avg) w->scale_by = 1.0 / env_.world_size;
    return w;
  }
  std::unique_ptr<Work> broadcast(const Tensor& t, int root) override {
    auto w = work({t}, "broadcast");
    char* p = static_cast<char*>(t.data_ptr());
    const int64_t chunk = INT_MAX / 2;
    for (int64_t off = 0; off < static_cast<int64_t>(t.nbytes()); off += chunk) {
      const int n = static_cast<int>(std::min<int64_t>(chunk, t.nbytes() - off));
      w->requests.emplace_back();
      mpi_check(MPI_Ibcast(p + off, n, MPI_BYTE, root, MPI_COMM_WORLD, &w->requests.back()), "MPI_Ibcast");
    }
    return w;
  }
  std::unique_ptr<Work> all_gather(const Tensor& in, const Tensor& out) override {
    auto w = work({in, out}, "all_gather");
    const int n = checked_count(static_cast<int64_t>(in.nbytes()), "all_gather");
    w->requests.emplace_back();
    mpi_check(MPI_Iallgather(in.data_ptr(), n, MPI_BYTE, out.data_ptr(), n, MPI_BYTE, MPI_COMM_WORLD,
                             &w->requests.back()),
              "MPI_Iallgather");
    return w;
  }
  std::unique_ptr<Work> reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    auto w = work({out, in}, "reduce_scatter");
    const int n = checked_count(out.numel(), "reduce_scatter");
    w->requests.emplace_back();
    mpi_check(MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), n, mpi_type(in.dtype()),
                                        mpi_op(op, in.dtype()), MPI_COMM_WORLD, &w->requests.back()),
              "MPI_Ireduce_scatter_block");
    if (op == ReduceOp::avg) w->scale_by = 1.0 / env_.world_size;
    return w;
  }
  std::unique_ptr<Work> all_to_all(const Tensor& in, const Tensor& out) override {
    auto w = work({in, out}, "all_to_all");
    const int n = checked_count(static_cast<int64_t>(in.nbytes()) / env_.world_size, "all_to_all");
    w->requests.emplace_back();
    mpi_check(MPI_Ialltoall(in.data_ptr(), n, MPI_BYTE, out.data_ptr(), n, MPI_BYTE, MPI_COMM_WORLD,
                            &w->requests.back()),
              "MPI_Ialltoall");
    return w;
  }
  void barrier() override {
    auto w = work({}, "barrier");
    w->requests.emplace_back();
    mpi_check(MPI_Ibarrier(MPI_COMM_WORLD, &w->requests.back()), "MPI_Ibarrier");
    w->wait();
  }

 private:
  std::unique_ptr<MpiWork> work(std::vector<Tensor> keep, const char* what) {
    for (const Tensor& t : keep)
      NABLA_CHECK(t.device().is_cpu(), "dist (mpi): ", what, " got a tensor on ", t.device(),
                  "; MPI carries CPU tensors");
    return std::make_unique<MpiWork>(std::move(keep), env_.timeout_s,
                                     std::string(what) + " on rank " + std::to_string(env_.rank));
  }
  MPI_Op mpi_op(ReduceOp op, DType t) const {
    const int k = op == ReduceOp::max ? 1 : op == ReduceOp::min ? 2 : 0;
    if (t == DType::bf16) return ops_.op[0][k];
    if (t == DType::f16) return ops_.op[1][k];
    return k == 0 ? MPI_SUM : k == 1 ? MPI_MAX : MPI_MIN;
  }
  LaunchEnv env_;
  bool owns_;
  Ops16 ops_;
};

}  // namespace

std::unique_ptr<Backend> make_mpi_backend(const LaunchEnv& env) {
  bool owns = false;
  if (!mpi_is_initialized()) {
    int provided = 0;
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owns = true;
  }
  int size = 0, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  NABLA_CHECK(size == env.world_size && rank == env.rank, "dist (mpi): MPI says rank ", rank, " of ", size,
              ", the environment (", launcher_name(env.launcher), ") says rank ", env.rank, " of ",
              env.world_size);
  return std::make_unique<MpiBackend>(env, owns);
}

std::string mpi_broadcast_bytes(const std::string& bytes, int size) {
  std::string buf = bytes;
  buf.resize(size);
  mpi_check(MPI_Bcast(buf.data(), size, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast of the NCCL unique id");
  return buf;
}
#endif

}  // namespace nabla::dist
