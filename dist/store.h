// A minimal TCP rendezvous that rank 0 serves: how processes started by a torchrun-style launcher or by
// srun find each other and share the NCCL unique id.
//
//   rank 0:   listen on MASTER_PORT (all interfaces); read each connection's hello
//               {magic "NABL", protocol version, rank, world size, job id}
//             until WORLD_SIZE - 1 real peers have arrived, then send every peer {magic, payload length,
//             payload} and wait for each one's acknowledgement
//   rank r>0: connect to MASTER_ADDR:MASTER_PORT (retrying while rank 0 is not up yet), send the hello,
//             read the payload, acknowledge
//
// It is also a barrier: nobody returns before every rank has arrived. Every wait is bounded by the timeout
// (poll() on non-blocking sockets, never a busy loop): a peer that never comes, a rank 0 that never
// listens, a duplicate rank or a peer with another world size ends the call with a nabla::Error saying
// who was missing, instead of a hang. One exchange per port: rank 0 closes the listening socket when it
// returns.
//
// Stray connections (a port scan, junk bytes, a silent client, a rank of another job on the same port)
// never stop rank 0 and never hold up the real peers: rank 0 serves every connection at once, drops one
// whose hello is wrong (bad magic, another protocol version, another job id) or incomplete after
// handshake_timeout_s (5 s), prints one line on stderr for each of the first few it drops, and goes on
// waiting for the real ranks. The job id comes from NABLA_JOB_ID, else TORCHELASTIC_RUN_ID, else
// SLURM_JOB_ID (empty when none is set): two jobs that share a port by mistake do not join each other.
#pragma once
#include <string>

namespace nabla::dist {

// NABLA_JOB_ID, TORCHELASTIC_RUN_ID or SLURM_JOB_ID (the first set), at most 255 bytes; "" when none is.
std::string rendezvous_job_id_from_env();

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  double timeout_s = 300;
  std::string job_id = rendezvous_job_id_from_env();
  double handshake_timeout_s = 5;  // a connection must send its whole hello within this
};

// Rank 0 passes the payload and gets it back; other ranks pass anything and get rank 0's payload.
std::string rendezvous_exchange(const RendezvousOptions& o, const std::string& payload);

}  // namespace nabla::dist
