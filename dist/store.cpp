// TCP rendezvous (store.h). Plain POSIX sockets: poll() with a deadline around every accept, connect, read
// and write, so that no call can block past the timeout.
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
#include <cstring>
#include <thread>
#include <vector>

#include "engine/error.h"

namespace nabla::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kMagic = 0x4e41424c;  // "NABL"

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
  int arrived = 0;
  while (arrived < o.world_size - 1) {
    pollfd pfd{lfd.fd, POLLIN, 0};
    int r = ::poll(&pfd, 1, ms_left(deadline));
    if (r == 0) {
      std::string missing;
      int shown = 0;
      for (int i = 1; i < o.world_size && shown < 16; ++i)
        if (peers[i].fd < 0) missing += (shown++ ? ", " : "") + std::to_string(i);
      fail(where, ": after ", o.timeout_s, " s only ", arrived, " of ", o.world_size - 1,
           " peers arrived (missing ranks ", missing, (o.world_size - 1 - arrived > shown ? ", ..." : ""),
           "); a rank failed to start or has another MASTER_ADDR/MASTER_PORT (timeout: NABLA_DIST_TIMEOUT)");
    }
    if (r < 0 && errno == EINTR) continue;
    NABLA_CHECK(r > 0, where, ": poll failed: ", std::strerror(errno));
    Fd c(::accept(lfd.fd, nullptr, nullptr));
    if (c.fd < 0) continue;  // EAGAIN: the connection went away
    set_nonblocking(c.fd);
    uint32_t hello[3];
    io_all(c.fd, hello, sizeof hello, false, deadline, where + " reading a peer's hello");
    NABLA_CHECK(hello[0] == kMagic, where, ": a connection that is not a Nabla rank (bad magic 0x", std::hex,
                hello[0], "); is MASTER_PORT used by another program?");
    const int rank = static_cast<int>(hello[1]), world = static_cast<int>(hello[2]);
    NABLA_CHECK(world == o.world_size, where, ": rank ", rank, " says the world size is ", world,
                ", rank 0 says ", o.world_size);
    NABLA_CHECK(rank >= 1 && rank < o.world_size, where, ": a peer says it is rank ", rank, " of ", world);
    NABLA_CHECK(peers[rank].fd < 0, where, ": rank ", rank,
                " arrived twice (two processes with the same RANK)");
    peers[rank] = std::move(c);
    ++arrived;
  }
  const uint64_t n = payload.size();
  for (int i = 1; i < o.world_size; ++i) {
    io_all(peers[i].fd, const_cast<uint64_t*>(&n), sizeof n, true, deadline,
           where + " sending to rank " + std::to_string(i));
    io_all(peers[i].fd, const_cast<char*>(payload.data()), n, true, deadline,
           where + " sending to rank " + std::to_string(i));
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
  uint32_t hello[3] = {kMagic, static_cast<uint32_t>(o.rank), static_cast<uint32_t>(o.world_size)};
  io_all(fd.fd, hello, sizeof hello, true, deadline, where + " sending hello");
  uint64_t n = 0;
  io_all(fd.fd, &n, sizeof n, false, deadline, where + " waiting for every rank to arrive");
  NABLA_CHECK(n < (1u << 30), where, ": implausible payload size ", n);
  std::string payload(n, '\0');
  io_all(fd.fd, payload.data(), n, false, deadline, where + " reading the payload");
  uint32_t ack = 1;
  io_all(fd.fd, &ack, sizeof ack, true, deadline, where + " sending ack");
  return payload;
}

}  // namespace

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
