// Start-up: the launcher environments, the TCP rendezvous (success, a peer that never comes, a rank 0 that
// never listens, a duplicate rank), and the strided evaluation shard. Single-process tests: the rendezvous
// peers are threads of this process, each test on a port of its own (so ranks under mpirun do not collide).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <thread>

#include "data/dataset.h"
#include "dist/env.h"
#include "dist/session.h"
#include "dist/store.h"
#include "nabla.h"

namespace nabla {
namespace {
using Clock = std::chrono::steady_clock;

// A port nobody listens on now (the kernel picks it).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Sets the launcher variables for one test and restores the process's own afterwards.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::string>& vars) {
    for (const char* n : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                          "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                          "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "NABLA_DIST_TIMEOUT"}) {
      if (const char* v = std::getenv(n)) saved_[n] = v;
      ::unsetenv(n);
    }
    for (auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    for (const char* n : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                          "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                          "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "NABLA_DIST_TIMEOUT"})
      ::unsetenv(n);
    for (auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
  }

 private:
  std::map<std::string, std::string> saved_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DistEnv, ReadsTorchrunMpirunAndSlurmVariables) {
  {
    ScopedEnv e({{"RANK", "3"},
                 {"WORLD_SIZE", "8"},
                 {"LOCAL_RANK", "1"},
                 {"MASTER_ADDR", "node7"},
                 {"MASTER_PORT", "29611"},
                 {"OMPI_COMM_WORLD_RANK", "0"},
                 {"OMPI_COMM_WORLD_SIZE", "2"},
                 {"NABLA_DIST_TIMEOUT", "12.5"}});
    auto env = dist::detect_launch_env();
    EXPECT_EQ(env.launcher, dist::Launcher::torchrun);  // explicit RANK/WORLD_SIZE win over mpirun's
    EXPECT_EQ(env.rank, 3);
    EXPECT_EQ(env.world_size, 8);
    EXPECT_EQ(env.local_rank, 1);
    EXPECT_EQ(env.master_addr, "node7");
    EXPECT_EQ(env.master_port, 29611);
    EXPECT_DOUBLE_EQ(env.timeout_s, 12.5);
  }
  {
    ScopedEnv e(
        {{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "6"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "2"}});
    auto env = dist::detect_launch_env();
    EXPECT_EQ(env.launcher, dist::Launcher::mpirun);
    EXPECT_EQ(env.rank, 5);
    EXPECT_EQ(env.world_size, 6);
    EXPECT_EQ(env.local_rank, 2);
  }
  {
    ScopedEnv e(
        {{"SLURM_PROCID", "9"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"}, {"MASTER_ADDR", "gpu-a01"}});
    auto env = dist::detect_launch_env();
    EXPECT_EQ(env.launcher, dist::Launcher::slurm);
    EXPECT_EQ(env.rank, 9);
    EXPECT_EQ(env.world_size, 16);
    EXPECT_EQ(env.local_rank, 1);
    EXPECT_EQ(env.master_addr, "gpu-a01");
    EXPECT_EQ(env.master_port, 29500);
  }
  {
    ScopedEnv e(std::map<std::string, std::string>{});
    auto env = dist::detect_launch_env();
    EXPECT_EQ(env.launcher, dist::Launcher::none);
    EXPECT_EQ(env.world_size, 1);
  }
}

TEST(DistEnv, MalformedOrInconsistentVariablesAreClearErrors) {
  {
    ScopedEnv e({{"RANK", "4"}, {"WORLD_SIZE", "4"}});
    EXPECT_NE(error_of([] { dist::detect_launch_env(); }).find("rank 4 is not below the world size 4"),
              std::string::npos);
  }
  {
    ScopedEnv e({{"RANK", "x1"}, {"WORLD_SIZE", "4"}});
    EXPECT_NE(error_of([] { dist::detect_launch_env(); }).find("RANK='x1'"), std::string::npos);
  }
  {
    ScopedEnv e({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}});
    EXPECT_NE(error_of([] { dist::detect_launch_env(); }).find("MASTER_ADDR"), std::string::npos);
  }
  {
    ScopedEnv e(std::map<std::string, std::string>{{"NABLA_DIST_TIMEOUT", "-3"}});
    EXPECT_NE(error_of([] { dist::detect_launch_env(); }).find("NABLA_DIST_TIMEOUT"), std::string::npos);
  }
  {
    // A CPU run of several processes without mpirun: an error that says to use mpirun, before any wait.
    ScopedEnv e({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", std::to_string(free_port())}});
    if (dist::mpi_is_initialized()) GTEST_SKIP() << "MPI is up in this process (mpirun): init would use it";
    const auto t0 = Clock::now();
    std::string err = error_of([] { dist::init({.device = Device::cpu()}); });
    EXPECT_NE(err.find("mpirun"), std::string::npos) << err;
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 2.0);
  }
}

TEST(DistRendezvous, EveryRankGetsRankZerosPayload) {
  const int port = free_port(), world = 4;
  std::vector<std::future<std::string>> peers;
  for (int r = 1; r < world; ++r)
    peers.push_back(std::async(std::launch::async, [=] {
      return dist::rendezvous_exchange({"127.0.0.1", port, r, world, 10.0}, "");
    }));
  std::string id(128, '\0');
  for (size_t i = 0; i < id.size(); ++i)
    id[i] = static_cast<char>((i * 37 + 11) & 0xff);  // binary, NULs included
  EXPECT_EQ(dist::rendezvous_exchange({"127.0.0.1", port, 0, world, 10.0}, id), id);
  for (auto& p : peers) EXPECT_EQ(p.get(), id);
}

TEST(DistRendezvous, APeerThatNeverComesFailsWithinTheTimeout) {
  const int port = free_port();
  const auto t0 = Clock::now();
  std::string err = error_of([&] { dist::rendezvous_exchange({"127.0.0.1", port, 0, 3, 0.5}, "id"); });
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_NE(err.find("only 0 of 2 peers arrived (missing ranks 1, 2)"), std::string::npos) << err;
  EXPECT_NE(err.find("NABLA_DIST_TIMEOUT"), std::string::npos) << err;
  EXPECT_GE(secs, 0.45);
  EXPECT_LT(secs, 3.0);
}

TEST(DistRendezvous, ARankZeroThatNeverListensFailsWithinTheTimeout) {
  const int port = free_port();
  const auto t0 = Clock::now();
  std::string err = error_of([&] { dist::rendezvous_exchange({"127.0.0.1", port, 1, 2, 0.5}, ""); });
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_NE(err.find("could not reach rank 0"), std::string::npos) << err;
  EXPECT_NE(err.find(std::to_string(port)), std::string::npos) << err;
  EXPECT_LT(secs, 3.0);
}

TEST(DistRendezvous, TwoProcessesWithTheSameRankAreAnError) {
  const int port = free_port();
  auto a = std::async(std::launch::async, [=] {
    return error_of([&] { dist::rendezvous_exchange({"127.0.0.1", port, 1, 3, 2.0}, ""); });
  });
  auto b = std::async(std::launch::async, [=] {
    return error_of([&] { dist::rendezvous_exchange({"127.0.0.1", port, 1, 3, 2.0}, ""); });
  });
  std::string err = error_of([&] { dist::rendezvous_exchange({"127.0.0.1", port, 0, 3, 2.0}, "x"); });
  EXPECT_NE(err.find("rank 1 arrived twice"), std::string::npos) << err;
  a.get();
  b.get();
}

TEST(DistSession, StridedShardsCoverTheSetExactlyOnce) {
  const int64_t n = 23;
  Tensor inputs = randn({n, 2});
  Tensor labels = arange(n);
  auto set = std::make_shared<data::TensorDataset>(inputs, labels);
  for (int64_t w : {1, 2, 3, 4, 7}) {
    std::vector<int> hits(n, 0);
    int64_t total = 0;
    for (int64_t r = 0; r < w; ++r) {
      dist::StridedDataset shard(set, r, w);
      total += shard.size();
      for (int64_t i = 0; i < shard.size(); ++i) ++hits[shard.get(i).label];
    }
    EXPECT_EQ(total, n) << w;
    for (int h : hits) EXPECT_EQ(h, 1) << w;
  }
  EXPECT_THROW(dist::StridedDataset(set, 3, 3), Error);
}

}  // namespace
}  // namespace nabla
