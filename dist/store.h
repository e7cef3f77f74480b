// A minimal TCP rendezvous that rank 0 serves: how processes started by a torchrun-style launcher or by
// srun find each other and share the NCCL unique id.
//
//   rank 0:   listen on MASTER_PORT (all interfaces), accept WORLD_SIZE - 1 connections, read each peer's
//             hello {magic, rank, world size}, then send every peer the payload (length + bytes)
//   rank r>0: connect to MASTER_ADDR:MASTER_PORT (retrying while rank 0 is not up yet), send the hello,
//             read the payload
//
// It is also a barrier: nobody returns before every rank has arrived. Every wait is bounded by the timeout
// (poll() on non-blocking sockets): a peer that never comes, a rank 0 that never listens, a duplicate rank
// or a peer with another world size ends the call with a nabla::Error saying who was missing, instead of
// a hang. One exchange per port: rank 0 closes the listening socket when it returns.
#pragma once
#include <string>

namespace nabla::dist {

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  double timeout_s = 300;
};

// Rank 0 passes the payload and gets it back; other ranks pass anything and get rank 0's payload.
std::string rendezvous_exchange(const RendezvousOptions& o, const std::string& payload);

}  // namespace nabla::dist
