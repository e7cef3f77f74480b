// TCP rendezvous (store.h). Plain POSIX sockets: poll() with a deadline around every accept, connect, read
// and write, so that no call can block past the timeout. Rank 0 polls the listening socket and every
// connection still in its handshake together, so a silent or slow connection delays nobody.
#include "dist/store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/error.h"

namespace nabla::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kMagic = 0x4e41424c;  // "NABL"
constexpr uint32_t kVersion = 2;         // 1: {magic, rank, world}; 2 adds the version and the job id
constexpr uint32_t kMaxJobId = 255;
constexpr size_t kHelloFixed = 5 * sizeof(uint32_t);  // magic, version, rank, world, job id length
constexpr size_t kMaxPending = 256;                   // connections in their handshake at once
constexpr int kMaxDropNotes = 8;                      // stderr lines about dropped connections

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int ms_left(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms > 0 ? static_cast<int>(std::min<int64_t>(ms, 1 << 30)) : 0;
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Moves exactly n bytes, or throws after the deadline / on a closed connection.
void io_all(int fd, void* buf, size_t n, bool write, Clock::time_point deadline, const std::string& who) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    pollfd pfd{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
    int r = ::poll(&pfd, 1, ms_left(deadline));
    NABLA_CHECK(r != 0, who, ": timed out ", write ? "sending to" : "waiting for data from", " the peer");
    if (r < 0 && errno == EINTR) continue;
    NABLA_CHECK(r > 0, who, ": poll failed: ", std::strerror(errno));
    ssize_t k = write ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    NABLA_CHECK(k > 0, who, ": the peer closed the connection",
                k < 0 ? std::string(" (") + std::strerror(errno) + ")" : std::string());
    p += k;
    n -= static_cast<size_t>(k);
  }
}

// A connection rank 0 has accepted and whose hello is not complete yet.
struct Pending {
  Fd fd;
  std::string from;  // "address:port", for messages
  Clock::time_point deadline;
  std::string hello;  // bytes received so far
};

std::string peer_name(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (a.ss_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
    port = ntohs(a6->sin6_port);
  } else if (a.ss_family == AF_INET) {
    const auto* a4 = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
    port = ntohs(a4->sin_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

uint32_t u32_at(const std::string& b, size_t i) {
  uint32_t v;
  std::memcpy(&v, b.data() + 4 * i, 4);
  return v;
}

// Printable and short: job ids and junk come from the network.
std::string printable(const std::string& s) {
  std::string r;
  for (size_t i = 0; i < s.size() && i < 64; ++i) r += (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
  return s.size() > 64 ? r + "..." : r;
}

std::string serve(const RendezvousOptions& o, const std::string& payload, Clock::time_point deadline) {
  const std::string where = "rendezvous (rank 0 serving port " + std::to_string(o.master_port) + ")";
  Fd lfd(::socket(AF_INET6, SOCK_STREAM, 0));
  bool v6 = lfd.fd >= 0;
  if (!v6) lfd = Fd(::socket(AF_INET, SOCK_STREAM, 0));
  NABLA_CHECK(lfd.fd >= 0, where, ": socket failed: ", std::strerror(errno));
  int one = 1, zero = 0;
  ::setsockopt(lfd.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (v6) {
    ::setsockopt(lfd.fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 peers too
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(static_cast<uint16_t>(o.master_port));
    rc = ::bind(lfd.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<uint16_t>(o.master_port));
    rc = ::bind(lfd.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  NABLA_CHECK(rc == 0, where, ": bind failed: ", std::strerror(errno),
              " (is another job using MASTER_PORT=", o.master_port, "? pick another)");
  NABLA_CHECK(::listen(lfd.fd, 1024) == 0, where, ": listen failed: ", std::strerror(errno));
  set_nonblocking(lfd.fd);

  std::vector<Fd> peers(o.world_size);
  std::vector<Pending> pending;
  int arrived = 0, notes = 0;
  const auto handshake = std::chrono::milliseconds(static_cast<int64_t>(o.handshake_timeout_s * 1000));
  auto drop = [&](size_t i, const std::string& why) {
    if (notes++ < kMaxDropNotes)
      std::fprintf(stderr, "nabla %s: dropped a connection from %s: %s%s\n", where.c_str(),
                   pending[i].from.c_str(), why.c_str(),
                   notes == kMaxDropNotes ? " (further drops are not reported)" : "");
    pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
  };
  while (arrived < o.world_size - 1) {
    // Connections that did not finish their hello in time go; the rest wait together with the listener.
    const auto now = Clock::now();
    for (size_t i = pending.size(); i-- > 0;)
      if (pending[i].deadline <= now)
        drop(i, str_cat("no complete hello within ", o.handshake_timeout_s, " s (", pending[i].hello.size(),
                        " bytes came)"));
    auto wake = deadline;
    for (const Pending& p : pending) wake = std::min(wake, p.deadline);
    std::vector<pollfd> fds{{lfd.fd, POLLIN, 0}};
    for (const Pending& p : pending) fds.push_back({p.fd.fd, POLLIN, 0});
    int r = ::poll(fds.data(), fds.size(), ms_left(wake));
    if (r == 0 && Clock::now() >= deadline) {
      std::string missing;
      int shown = 0;
      for (int i = 1; i < o.world_size && shown < 16; ++i)
        if (peers[i].fd < 0) missing += (shown++ ? ", " : "") + std::to_string(i);
      fail(where, ": after ", o.timeout_s, " s only ", arrived, " of ", o.world_size - 1,
           " peers arrived (missing ranks ", missing, (o.world_size - 1 - arrived > shown ? ", ..." : ""),
           "); a rank failed to start or has another MASTER_ADDR/MASTER_PORT (timeout: NABLA_DIST_TIMEOUT)");
    }
    if (r < 0 && errno == EINTR) continue;
    NABLA_CHECK(r >= 0, where, ": poll failed: ", std::strerror(errno));
    // Read what the pending connections sent (from the back, so that drops keep the indices valid).
    for (size_t i = pending.size(); i-- > 0;) {
      if (!(fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Pending& p = pending[i];
      size_t want = kHelloFixed;
      if (p.hello.size() >= kHelloFixed) want += std::min(u32_at(p.hello, 4), kMaxJobId);
      char buf[kHelloFixed + kMaxJobId];
      ssize_t k = ::recv(p.fd.fd, buf, want - p.hello.size(), 0);
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (k <= 0) {
        drop(i, str_cat("closed after ", p.hello.size(), " bytes, before a complete hello"));
        continue;
      }
      p.hello.append(buf, static_cast<size_t>(k));
      if (p.hello.size() == kHelloFixed) {
        const uint32_t magic = u32_at(p.hello, 0), version = u32_at(p.hello, 1), len = u32_at(p.hello, 4);
        if (magic != kMagic) {
          drop(i, str_cat("not a Nabla rank (bad magic ", printable(p.hello.substr(0, 4)), ")"));
          continue;
        }
        if (version != kVersion) {
          drop(i, str_cat("a Nabla rank speaking rendezvous protocol ", version, ", this one speaks ",
                          kVersion, " (mixed builds?)"));
          continue;
        }
        if (len > kMaxJobId) {
          drop(i, str_cat("a job id of ", len, " bytes (at most ", kMaxJobId, ")"));
          continue;
        }
      }
      if (p.hello.size() < kHelloFixed || p.hello.size() < kHelloFixed + u32_at(p.hello, 4)) continue;
      const std::string job = p.hello.substr(kHelloFixed);
      if (job != o.job_id) {
        drop(i, str_cat("a rank of job '", printable(job), "', this is job '", printable(o.job_id),
                        "' (NABLA_JOB_ID); is MASTER_PORT shared by two jobs?"));
        continue;
      }
      const int rank = static_cast<int>(u32_at(p.hello, 2)), world = static_cast<int>(u32_at(p.hello, 3));
      NABLA_CHECK(world == o.world_size, where, ": rank ", rank, " says the world size is ", world,
                  ", rank 0 says ", o.world_size);
      NABLA_CHECK(rank >= 1 && rank < o.world_size, where, ": a peer says it is rank ", rank, " of ", world);
      NABLA_CHECK(peers[rank].fd < 0, where, ": rank ", rank,
                  " arrived twice (two processes with the same RANK)");
      peers[rank] = std::move(p.fd);
      pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
      ++arrived;
    }
    if (fds[0].revents & POLLIN) {
      for (;;) {  // every connection waiting in the backlog
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        Fd c(::accept(lfd.fd, reinterpret_cast<sockaddr*>(&addr), &len));
        if (c.fd < 0) break;  // EAGAIN: none left (or it went away)
        set_nonblocking(c.fd);
        if (pending.size() >= kMaxPending) drop(0, "too many connections in their handshake at once");
        pending.push_back({std::move(c), peer_name(addr), Clock::now() + handshake, {}});
      }
    }
  }
  const uint64_t n = payload.size();
  uint32_t magic = kMagic;
  for (int i = 1; i < o.world_size; ++i) {
    const std::string to = where + " sending to rank " + std::to_string(i);
    io_all(peers[i].fd, &magic, sizeof magic, true, deadline, to);
    io_all(peers[i].fd, const_cast<uint64_t*>(&n), sizeof n, true, deadline, to);
    io_all(peers[i].fd, const_cast<char*>(payload.data()), n, true, deadline, to);
  }
  // Wait for each peer's acknowledgement, so that nobody leaves before everyone has the payload.
  for (int i = 1; i < o.world_size; ++i) {
    uint32_t ack = 0;
    io_all(peers[i].fd, &ack, sizeof ack, false, deadline,
           where + " waiting for rank " + std::to_string(i) + "'s ack");
  }
  return payload;
}

std::string join(const RendezvousOptions& o, Clock::time_point deadline) {
  const std::string where = "rendezvous (rank " + std::to_string(o.rank) + " joining " + o.master_addr + ":" +
                            std::to_string(o.master_port) + ")";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string last_error = "no attempt";
  Fd fd;
  while (true) {
    addrinfo* res = nullptr;
    int g = ::getaddrinfo(o.master_addr.c_str(), std::to_string(o.master_port).c_str(), &hints, &res);
    if (g != 0) {
      last_error = std::string("cannot resolve MASTER_ADDR: ") + ::gai_strerror(g);
    } else {
      for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        Fd s(::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol));
        if (s.fd < 0) continue;
        set_nonblocking(s.fd);
        int rc = ::connect(s.fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
          pollfd pfd{s.fd, POLLOUT, 0};
          if (::poll(&pfd, 1, std::min(ms_left(deadline), 1000)) > 0) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            rc = err == 0 ? 0 : -1;
            errno = err;
          } else {
            errno = ETIMEDOUT;
          }
        }
        if (rc == 0) {
          fd = std::move(s);
          break;
        }
        last_error = std::strerror(errno);
      }
      ::freeaddrinfo(res);
    }
    if (fd.fd >= 0) break;
    NABLA_CHECK(ms_left(deadline) > 0, where, ": could not reach rank 0 within ", o.timeout_s,
                " s (last error: ", last_error,
                "); is rank 0 running, and are MASTER_ADDR/MASTER_PORT right? (timeout: NABLA_DIST_TIMEOUT)");
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, ms_left(deadline))));
  }
  int one = 1;
  ::setsockopt(fd.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  NABLA_CHECK(o.job_id.size() <= kMaxJobId, where, ": the job id has ", o.job_id.size(), " bytes, at most ",
              kMaxJobId);
  uint32_t head[5] = {kMagic, kVersion, static_cast<uint32_t>(o.rank), static_cast<uint32_t>(o.world_size),
                      static_cast<uint32_t>(o.job_id.size())};
  std::string hello(reinterpret_cast<const char*>(head), sizeof head);
  hello += o.job_id;
  io_all(fd.fd, hello.data(), hello.size(), true, deadline, where + " sending hello");
  uint32_t magic = 0;
  io_all(fd.fd, &magic, sizeof magic, false, deadline,
         where + " waiting for every rank to arrive (rank 0 drops ranks of another NABLA_JOB_ID or build)");
  NABLA_CHECK(magic == kMagic, where, ": the server on the port is not a Nabla rank 0 (bad magic ",
              printable(std::string(reinterpret_cast<const char*>(&magic), 4)), ")");
  uint64_t n = 0;
  io_all(fd.fd, &n, sizeof n, false, deadline, where + " reading the payload size");
  NABLA_CHECK(n < (1u << 30), where, ": implausible payload size ", n);
  std::string payload(n, '\0');
  io_all(fd.fd, payload.data(), n, false, deadline, where + " reading the payload");
  uint32_t ack = 1;
  io_all(fd.fd, &ack, sizeof ack, true, deadline, where + " sending ack");
  return payload;
}

}  // namespace

std::string rendezvous_job_id_from_env() {
  for (const char* name : {"NABLA_JOB_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID"})
    if (const char* v = std::getenv(name); v && *v) return std::string(v).substr(0, kMaxJobId);
  return "";
}

std::string rendezvous_exchange(const RendezvousOptions& o, const std::string& payload) {
  NABLA_CHECK(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size, "rendezvous: rank ", o.rank,
              " of world size ", o.world_size);
  NABLA_CHECK(o.master_port > 0 && o.master_port < 65536, "rendezvous: MASTER_PORT ", o.master_port,
              " is not a port");
  if (o.world_size == 1) return payload;
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  return o.rank == 0 ? serve(o, payload, deadline) : join(o, deadline);
}

}  // namespace nabla::dist
