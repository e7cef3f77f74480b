// Collectives in the trace (engine/trace.h, dist/communicator.cpp): every collective of the communicator
// is one complete event (cat "collective") on a "collectives" track of the host, with its name, bytes,
// dtype, shape, world size, rank and backend; two async all-reduces in flight together take two lanes, and
// no two events of a lane overlap; nothing is recorded when not tracing. Runs in a single process (the
// identity backend) and under mpirun (MPI), and on CUDA tensors over NCCL when each rank has a GPU, where
// the collectives' device time is on the GPU's "comm stream" track too.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "dist/dist_test.h"
#include "engine/trace.h"
#include "nabla.h"

namespace nabla {
namespace {
using dist_test::comm;

struct Expected {
  std::string name;
  size_t bytes;
  std::string dtype;
};

// Sizes every rank agrees on: rank 0 draws them and broadcasts them (outside any trace).
std::vector<int64_t> shared_sizes(int count, Device dev) {
  std::random_device rd;
  std::mt19937_64 rng(rd());
  std::vector<double> v;
  for (int i = 0; i < count; ++i)
    v.push_back(static_cast<double>(std::uniform_int_distribution<int>(1, 40)(rng)));
  Tensor t = from_vector(v, {count}, {.dtype = DType::i64}).to(dev);
  comm().broadcast(t, 0);
  std::vector<int64_t> out;
  for (double d : t.to_vector<double>()) out.push_back(static_cast<int64_t>(d));
  return out;
}

void check_trace_of_collectives(Device dev) {
  auto& c = comm();
  const int64_t w = c.world_size();
  const auto n = shared_sizes(6, dev);
  ASSERT_FALSE(trace::enabled()) << "a trace is recording (NABLA_TRACE set?)";
  trace::start();
  Tensor t = randn({n[0], 3}).to(dev);
  c.all_reduce(t);
  Tensor b = randn({n[1]}, {.dtype = DType::f64}).to(dev);
  c.broadcast(b, static_cast<int>(w - 1));
  Tensor g = c.all_gather(randn({n[2]}).to(dev));
  Tensor rs = c.reduce_scatter(randn({w * n[3], 2}).to(dev));
  Tensor a2a = c.all_to_all(randint(0, 9, {w * n[4]}, {.dtype = DType::i32}).to(dev));
  c.barrier();
  Tensor x1 = randn({n[5]}).to(dev), x2 = randn({n[5], 2}).to(dev);
  auto w1 = c.all_reduce_async(x1);
  auto w2 = c.all_reduce_async(x2);
  w2->wait();
  w1->wait();
  const nlohmann::json j = nlohmann::json::parse(trace::stop());
  const std::vector<Expected> want{{"all_reduce", static_cast<size_t>(n[0] * 3 * 4), "f32"},
                                   {"broadcast", static_cast<size_t>(n[1] * 8), "f64"},
                                   {"all_gather", static_cast<size_t>(n[2] * 4), "f32"},
                                   {"reduce_scatter", static_cast<size_t>(w * n[3] * 2 * 4), "f32"},
                                   {"all_to_all", static_cast<size_t>(w * n[4] * 4), "i32"},
                                   {"barrier", 0, "none"},
                                   {"all_reduce_async", static_cast<size_t>(n[5] * 4), "f32"},
                                   {"all_reduce_async", static_cast<size_t>(n[5] * 2 * 4), "f32"}};
  const std::string backend = w == 1 ? "single process" : dev.is_cuda() ? "nccl" : "mpi";

  std::vector<nlohmann::json> host, device;
  bool named = false;
  for (const auto& e : j.at("traceEvents")) {
    if (e.at("ph") == "M") {
      named |= e.at("name") == "thread_name" && e.at("tid") == trace::kCollectiveTrack &&
               e.at("args").at("name") == "collectives";
      continue;
    }
    if (e.value("cat", "") != "collective") continue;
    EXPECT_EQ(e.at("ph"), "X");
    (e.at("pid").get<int>() >= trace::kDevicePid ? device : host).push_back(e);
  }
  EXPECT_TRUE(named) << "no 'collectives' track name";
  // Host events: in the order they ended (the second async one was waited for first).
  ASSERT_EQ(host.size(), want.size()) << j.dump().substr(0, 2000);
  std::sort(host.begin(), host.end(), [](const auto& a, const auto& b) {
    return a.at("ts").template get<double>() < b.at("ts").template get<double>();
  });
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& e = host[i];
    const auto& a = e.at("args");
    EXPECT_EQ(e.at("name"), want[i].name) << i;
    EXPECT_EQ(a.at("bytes").get<size_t>(), want[i].bytes) << want[i].name;
    EXPECT_EQ(a.at("dtype"), want[i].dtype) << want[i].name;
    EXPECT_EQ(a.at("world_size").get<int64_t>(), w) << want[i].name;
    EXPECT_EQ(a.at("rank").get<int>(), c.rank()) << want[i].name;
    EXPECT_EQ(a.at("backend"), backend) << want[i].name;
    EXPECT_GE(e.at("dur").get<double>(), 0);
    EXPECT_GE(e.at("tid").get<int>(), trace::kCollectiveTrack);
  }
  EXPECT_EQ(host[0].at("args").at("op"), "sum");
  EXPECT_EQ(host[1].at("args").at("root").get<int64_t>(), w - 1);
  EXPECT_EQ(host[2].at("args").at("out_bytes").get<size_t>(), want[2].bytes * w);
  EXPECT_EQ(host[3].at("args").at("out_bytes").get<size_t>(), want[3].bytes / w);
  EXPECT_TRUE(host[6].at("args").at("async").get<bool>());
  // The two async all-reduces were in flight together: two lanes. No lane has overlapping events.
  EXPECT_NE(host[6].at("tid"), host[7].at("tid"));
  std::map<int, std::vector<std::pair<double, double>>> lanes;
  for (const auto& e : host)
    lanes[e.at("tid")].push_back(
        {e.at("ts").get<double>(), e.at("ts").get<double>() + e.at("dur").get<double>()});
  for (auto& [tid, ivs] : lanes) {
    std::sort(ivs.begin(), ivs.end());
    for (size_t i = 1; i < ivs.size(); ++i)
      EXPECT_LE(ivs[i - 1].second, ivs[i].first + 1e-3) << "lane " << tid;
  }
  // NCCL: each collective's device time on the comm stream (the barrier goes over MPI when there is MPI,
  // else it is an all_reduce of one float on NCCL).
  if (dev.is_cuda() && w > 1) {
    EXPECT_EQ(device.size(), want.size() - (c.has_cpu_backend() ? 1 : 0));
    for (const auto& e : device) EXPECT_EQ(e.at("tid").get<int>(), trace::kCommTrack);
  } else {
    EXPECT_TRUE(device.empty());
  }
  // Off: nothing.
  c.all_reduce(t);
  EXPECT_FALSE(trace::enabled());
}

TEST(DistTrace, CollectivesAreTraceEventsOnCpu) {
  if (comm().world_size() > 1) SKIP_WITHOUT_CPU_COLLECTIVES();
  check_trace_of_collectives(Device::cpu());
}

TEST(DistTrace, CollectivesAreTraceEventsOnCuda) {
  SKIP_WITHOUT_GPU_COLLECTIVES();
  check_trace_of_collectives(dist_test::gpu());
}

}  // namespace
}  // namespace nabla
