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
#include <random>
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

// Opens a TCP connection to the rendezvous port (retrying while rank 0 is not listening yet), sends
// `bytes`, and keeps the connection open for `hold_s` seconds: a port probe, junk, or a silent client.
std::thread stray_client(int port, std::string bytes, double hold_s) {
  return std::thread([=] {
    const auto until = Clock::now() + std::chrono::duration<double>(5.0);
    int fd = -1;
    while (Clock::now() < until) {
      fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(port));
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) break;
      ::close(fd);
      fd = -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (fd < 0) return;
    if (!bytes.empty()) (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(std::chrono::duration<double>(hold_s));
    ::close(fd);
  });
}

TEST(DistRendezvous, JunkAndSilentConnectionsNeitherAbortRankZeroNorDelayThePeers) {
  const int port = free_port(), world = 3;
  // Before the real peers: a silent connection held for 4 s, junk bytes, an HTTP probe, a connect-and-close.
  std::vector<std::thread> strays;
  strays.push_back(stray_client(port, "", 4.0));
  strays.push_back(stray_client(port, std::string("\x00\xff junk junk junk junk junk", 30), 4.0));
  strays.push_back(stray_client(port, "GET / HTTP/1.0\r\n\r\n", 4.0));
  strays.push_back(stray_client(port, "", 0.0));
  std::vector<std::future<std::string>> peers;
  for (int r = 1; r < world; ++r)
    peers.push_back(std::async(std::launch::async, [=] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // after the strays
      return dist::rendezvous_exchange({"127.0.0.1", port, r, world, 30.0, "job-7"}, "");
    }));
  const std::string id = "unique-id-" + std::to_string(std::random_device{}());
  const auto t0 = Clock::now();
  EXPECT_EQ(dist::rendezvous_exchange({"127.0.0.1", port, 0, world, 30.0, "job-7"}, id), id);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& p : peers) EXPECT_EQ(p.get(), id);
  // The real peers did not wait for the silent connection (4 s) nor for its handshake deadline (5 s), though it outlives the rendezvous.
  EXPECT_LT(secs, 3.0);
  for (auto& t : strays) t.join();
}

TEST(DistRendezvous, SilentConnectionsAreDroppedAfterTheHandshakeDeadline) {
  const int port = free_port();
  // A silent client that never sends its hello, and the real rank 1 that comes later than its deadline.
  std::thread silent = stray_client(port, "", 3.0);
  auto peer = std::async(std::launch::async, [=] {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    dist::RendezvousOptions o{"127.0.0.1", port, 1, 2, 10.0, "j"};
    return dist::rendezvous_exchange(o, "");
  });
  dist::RendezvousOptions o{"127.0.0.1", port, 0, 2, 10.0, "j"};
  o.handshake_timeout_s = 0.3;
  testing::internal::CaptureStderr();
  EXPECT_EQ(dist::rendezvous_exchange(o, "payload"), "payload");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(peer.get(), "payload");
  EXPECT_NE(err.find("nabla rendezvous (rank 0 serving port " + std::to_string(port) +
                     "): dropped a connection from "),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(": no complete hello within 0.3 s (0 bytes came)"), std::string::npos) << err;
  silent.join();
}

TEST(DistRendezvous, ARankOfAnotherJobIsDroppedAndTheRightOneServed) {
  const int port = free_port();
  auto stranger = std::async(std::launch::async, [=] {
    return error_of([&] { dist::rendezvous_exchange({"127.0.0.1", port, 1, 2, 2.0, "other-job"}, ""); });
  });
  auto peer = std::async(std::launch::async, [=] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return dist::rendezvous_exchange({"127.0.0.1", port, 1, 2, 10.0, "my-job"}, "");
  });
  testing::internal::CaptureStderr();
  EXPECT_EQ(dist::rendezvous_exchange({"127.0.0.1", port, 0, 2, 10.0, "my-job"}, "id"), "id");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(peer.get(), "id");
  EXPECT_NE(
      err.find(": a rank of job 'other-job', this is job 'my-job' (NABLA_JOB_ID); is MASTER_PORT shared by "
               "two jobs?"),
      std::string::npos)
      << err;
  const std::string stranger_err = stranger.get();
  EXPECT_NE(
      stranger_err.find("rendezvous (rank 1 joining 127.0.0.1:" + std::to_string(port) +
                        ") waiting for every rank to arrive (rank 0 drops ranks of another NABLA_JOB_ID or "
                        "build): the peer closed the connection"),
      std::string::npos)
      << stranger_err;
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
