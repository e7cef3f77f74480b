// Collectives on every dtype, against results computed locally from every rank's known input: rank r's
// input is drawn from a generator seeded with (test seed, r), so each rank can rebuild all W inputs.
// Values are small integers where a 16-bit float must sum exactly, Gaussian elsewhere (with a tolerance).
// Each check runs on CPU tensors (MPI) and again on CUDA tensors (NCCL) when each rank has a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "dist/dist_test.h"
#include "nabla.h"

namespace nabla {
namespace {
using dist::ReduceOp;
using dist_test::comm;

constexpr DType kAllDTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                DType::i32, DType::i64, DType::u8};

// Rank r's input for a test: integers in [lo, hi) (any dtype), or N(0,1) for f32/f64 when gaussian.
Tensor rank_input(int r, uint64_t seed, const Shape& shape, DType dt, bool gaussian = false) {
  Generator g{seed * 977 + 13, static_cast<uint64_t>(r) << 32};
  if (gaussian && (dt == DType::f32 || dt == DType::f64)) return randn(shape, {.dtype = dt}, &g);
  const int64_t lo = dt == DType::u8 ? 0 : -8, hi = dt == DType::u8 ? 50 : 9;
  Tensor t = randint(lo, hi, shape, {.dtype = DType::i64}, &g).to(dt);
  return t;
}

std::vector<double> expected_reduce(uint64_t seed, const Shape& shape, DType dt, ReduceOp op, bool gaussian) {
  const int w = comm().world_size();
  std::vector<double> acc;
  for (int r = 0; r < w; ++r) {
    auto v = rank_input(r, seed, shape, dt, gaussian).to_vector<double>();
    if (r == 0) {
      acc = v;
      continue;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      if (op == ReduceOp::sum || op == ReduceOp::avg) acc[i] += v[i];
      if (op == ReduceOp::max) acc[i] = std::max(acc[i], v[i]);
      if (op == ReduceOp::min) acc[i] = std::min(acc[i], v[i]);
    }
  }
  if (op == ReduceOp::avg)
    for (double& a : acc) a /= w;
  return acc;
}

double tolerance(DType dt, bool gaussian) {
  if (dt == DType::bf16) return 2e-2;  // avg rounds the exact sum once more
  if (dt == DType::f16) return 2e-3;
  if (gaussian) return dt == DType::f64 ? 1e-12 : 1e-5;
  return 0;
}

void expect_values(const Tensor& got, const std::vector<double>& want, double tol, const std::string& what) {
  auto g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], want[i], tol * std::max(1.0, std::abs(want[i])))
        << what << " at " << i << " on rank " << comm().rank();
}

void check_all_reduce(Device dev) {
  uint64_t seed = 100;
  for (DType dt : kAllDTypes)
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max, ReduceOp::min})
      for (bool gaussian : {false, true}) {
        if (op == ReduceOp::avg && is_integral(dt)) continue;
        if (gaussian && !(dt == DType::f32 || dt == DType::f64)) continue;
        ++seed;
        const Shape shape{37, 5};
        Tensor t = rank_input(comm().rank(), seed, shape, dt, gaussian).to(dev);
        comm().all_reduce(t, op);
        EXPECT_EQ(t.dtype(), dt);
        expect_values(t, expected_reduce(seed, shape, dt, op, gaussian), tolerance(dt, gaussian),
                      std::string("all_reduce ") + dist::reduce_op_name(op) + " " + dtype_name(dt) + " on " +
                          dev.str());
      }
}

void check_broadcast_gather_scatter_alltoall(Device dev) {
  const int w = comm().world_size(), me = comm().rank();
  uint64_t seed = 500;
  std::vector<DType> dtypes(std::begin(kAllDTypes), std::end(kAllDTypes));
  dtypes.push_back(DType::b8);
  for (DType dt : dtypes) {
    ++seed;
    const DType src_dt = dt == DType::b8 ? DType::u8 : dt;
    auto input = [&](int r, const Shape& s) {
      Tensor t = rank_input(r, seed, s, src_dt);
      return dt == DType::b8 ? gt(t, scalar_like(20.0, t)) : t;
    };
    // broadcast from the last rank
    Tensor b = input(me, {4, 6}).to(dev);
    comm().broadcast(b, w - 1);
    expect_values(b, input(w - 1, {4, 6}).to_vector<double>(), 0, std::string("broadcast ") + dtype_name(dt));
    // all_gather: row r from rank r
    Tensor g = comm().all_gather(input(me, {3, 5}).to(dev));
    ASSERT_EQ(g.shape(), (Shape{w, 3, 5}));
    for (int r = 0; r < w; ++r)
      expect_values(g.select(0, r), input(r, {3, 5}).to_vector<double>(), 0,
                    std::string("all_gather ") + dtype_name(dt));
    // all_to_all: chunk j of rank i lands in chunk i of rank j
    Tensor a = comm().all_to_all(input(me, {2 * w, 3}).to(dev));
    ASSERT_EQ(a.shape(), (Shape{2 * w, 3}));
    for (int i = 0; i < w; ++i)
      expect_values(a.narrow(0, 2 * i, 2), input(i, {2 * w, 3}).narrow(0, 2 * me, 2).to_vector<double>(), 0,
                    std::string("all_to_all ") + dtype_name(dt));
    if (dt == DType::b8) continue;
    // reduce_scatter: rows me*k .. (me+1)*k of the sum (avg for floating point)
    const ReduceOp op = is_floating(dt) ? ReduceOp::avg : ReduceOp::sum;
    const Shape full{3 * w, 4};
    Tensor rs = comm().reduce_scatter(rank_input(me, seed, full, dt).to(dev), op);
    ASSERT_EQ(rs.shape(), (Shape{3, 4}));
    auto want = expected_reduce(seed, full, dt, op, false);
    expect_values(rs, std::vector<double>(want.begin() + me * 12, want.begin() + (me + 1) * 12),
                  tolerance(dt, false), std::string("reduce_scatter ") + dtype_name(dt));
  }
}

void check_async_and_noncontiguous(Device dev) {
  // Several all-reduces in flight at once, waited in reverse order.
  std::vector<Tensor> ts;
  std::vector<std::unique_ptr<dist::Work>> works;
  for (int k = 0; k < 4; ++k) {
    ts.push_back(rank_input(comm().rank(), 900 + k, {1000 + 17 * k}, DType::f32, true).to(dev));
    works.push_back(comm().all_reduce_async(ts.back(), ReduceOp::sum));
  }
  for (int k = 3; k >= 0; --k) {
    works[k]->wait();
    expect_values(ts[k], expected_reduce(900 + k, {1000 + 17 * k}, DType::f32, ReduceOp::sum, true), 1e-5,
                  "async all_reduce");
  }
  // A transposed view is reduced through a contiguous copy and written back in place.
  Tensor base = rank_input(comm().rank(), 950, {6, 4}, DType::f64, true).to(dev);
  Tensor view = base.t();
  comm().all_reduce(view, ReduceOp::max);
  expect_values(base, expected_reduce(950, {6, 4}, DType::f64, ReduceOp::max, true), 0,
                "non-contiguous all_reduce");
  comm().barrier();
}

TEST(DistCollectives, AllReduceEveryDTypeAndOpOnCpu) {
  SKIP_WITHOUT_CPU_COLLECTIVES();
  check_all_reduce(Device::cpu());
}
TEST(DistCollectives, BroadcastAllGatherReduceScatterAllToAllOnCpu) {
  SKIP_WITHOUT_CPU_COLLECTIVES();
  check_broadcast_gather_scatter_alltoall(Device::cpu());
}
TEST(DistCollectives, AsyncAndNonContiguousOnCpu) {
  SKIP_WITHOUT_CPU_COLLECTIVES();
  check_async_and_noncontiguous(Device::cpu());
}
TEST(DistCollectives, AllReduceEveryDTypeAndOpOnCuda) {
  SKIP_WITHOUT_GPU_COLLECTIVES();
  check_all_reduce(dist_test::gpu());
}
TEST(DistCollectives, BroadcastAllGatherReduceScatterAllToAllOnCuda) {
  SKIP_WITHOUT_GPU_COLLECTIVES();
  check_broadcast_gather_scatter_alltoall(dist_test::gpu());
}
TEST(DistCollectives, AsyncAndNonContiguousOnCuda) {
  SKIP_WITHOUT_GPU_COLLECTIVES();
  check_async_and_noncontiguous(dist_test::gpu());
}

TEST(DistCollectives, RefusesIntegerAverageAndBoolReduction) {
  Tensor i = rank_input(comm().rank(), 7, {4}, DType::i32);
  try {
    comm().all_reduce(i, ReduceOp::avg);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("avg of i32"), std::string::npos) << e.what();
  }
  Tensor x = rank_input(comm().rank(), 8, {4}, DType::f32, true);
  Tensor b = gt(x, scalar_like(0.0, x));
  EXPECT_THROW(comm().all_reduce(b, ReduceOp::sum), Error);
  if (comm().world_size() > 1) {
    Tensor odd = rank_input(comm().rank(), 9, {2 * comm().world_size() + 1}, DType::f32);
    EXPECT_THROW(comm().reduce_scatter(odd), Error);
  }
}

TEST(DistCollectives, SingleProcessCollectivesAreTheIdentity) {
  if (comm().world_size() != 1) GTEST_SKIP() << "for a world of one process";
  Tensor t = rank_input(0, 11, {5, 3}, DType::f32, true);
  const auto before = t.to_vector<double>();
  comm().all_reduce(t, ReduceOp::avg);
  expect_values(t, before, 0, "all_reduce");
  Tensor g = comm().all_gather(t);
  EXPECT_EQ(g.shape(), (Shape{1, 5, 3}));
  expect_values(g, before, 0, "all_gather");
  expect_values(comm().all_to_all(t), before, 0, "all_to_all");
  comm().barrier();
}

}  // namespace
}  // namespace nabla
