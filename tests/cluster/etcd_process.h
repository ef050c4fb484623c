#ifndef STRATA_TESTS_CLUSTER_ETCD_PROCESS_H_
#define STRATA_TESTS_CLUSTER_ETCD_PROCESS_H_

// A real single-member etcd (Debian's etcd-server) for tests: on 127.0.0.1
// with free ports, data in a directory the test owns, killed by PID when
// the object goes away (and by the kernel if the test process dies first).

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cluster/etcd_client.h"

namespace strata::testing {

// Starts `argv` (argv[0] is the program's path) in a child process with
// environment `env` ("NAME=value" entries; empty = this process's own),
// stdin from /dev/null and stdout/stderr appended to `log_path`. The child
// dies with the thread that started it (PR_SET_PDEATHSIG: a test killed by
// ctest's timeout leaves nothing behind; the setting survives an exec of
// the child's own). Returns its PID, for the caller to kill and reap.
// Internal with the path or call and errno text if the log cannot be
// opened or fork fails; a program that cannot be executed exits 127.
absl::StatusOr<pid_t> SpawnWithLog(const std::vector<std::string>& argv,
                                   const std::vector<std::string>& env,
                                   const std::string& log_path);

// `n` distinct free TCP ports on 127.0.0.1, found by binding port 0 (all
// at once, so they differ) and closing the sockets again: another process
// may take one before the caller binds it, rarely (the kernel does not
// hand a released ephemeral port out again soon). Internal with errno text
// if a socket cannot be made or bound.
absl::StatusOr<std::vector<int>> FreePorts(int n);
// FreePorts(1)'s port.
absl::StatusOr<int> PickFreePort();

// An etcd serving its client URL over TLS (https://).
struct EtcdServerTls {
  // The member's certificate and key (PEM); it must name 127.0.0.1.
  std::string cert_file;
  std::string key_file;
  // Set: etcd requires client certificates signed by this CA
  // (--client-cert-auth --trusted-ca-file).
  std::string client_ca_file;
  // How Start's readiness probe connects (a CA for cert_file, and a client
  // certificate when client_ca_file is set).
  cluster::EtcdTlsOptions probe;
};

// TLS for an etcd that requires client certificates, from the files of
// scripts/gen-test-certs.sh (TestPki): it serves server.crt, trusts
// ca.crt for clients, and its probe (and any client copying `probe`)
// presents client.crt. `path` maps a file name to its path
// (TestPki::Path).
EtcdServerTls MutualTlsEtcd(
    const std::function<std::string(const std::string&)>& path);

class EtcdProcess {
 public:
  // Picks two free ports (client, peer) by binding 127.0.0.1:0, starts
  // `etcd` (found on $PATH, else /usr/bin/etcd) with its data in
  // `data_dir`, heartbeat 10 ms and election timeout 100 ms (so leases as
  // short as 1 s are honoured), and polls it with Range calls until it
  // answers or `timeout` passes. FailedPrecondition if etcd is not
  // installed (Debian package etcd-server); Unavailable with its log if it
  // exits or does not answer in time.
  // With `tls.cert_file` set, the client URL is https:// with that
  // certificate (see EtcdServerTls).
  static absl::StatusOr<std::unique_ptr<EtcdProcess>> Start(
      const std::string& data_dir, absl::Duration timeout = absl::Seconds(30),
      EtcdServerTls tls = {});
  // SIGKILLs etcd if it is still running and reaps it.
  ~EtcdProcess();
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // host:port of the client URL, for EtcdClientOptions::endpoint.
  const std::string& endpoint() const { return endpoint_; }
  pid_t pid() const { return pid_; }

  // SIGTERM, then waits up to `timeout` for it to exit (SIGKILL after).
  absl::Status Stop(absl::Duration timeout = absl::Seconds(10));
  // Stop() then start again on the same ports and data directory, and wait
  // until it answers.
  absl::Status Restart(absl::Duration timeout = absl::Seconds(30));
  // What etcd logged (stdout and stderr) so far.
  std::string Log() const;

  // Turns on etcd's authentication through its Auth API, as etcdctl's
  // `user add root`, `user grant-role root root` and `auth enable` do:
  // user "root" with `root_password` and the root role (every key). Each
  // of `users` (name, password) is added too with a role of its own name
  // that has no permissions. From then on the readiness probe of Restart()
  // authenticates as root. FailedPrecondition for a TLS etcd (not needed
  // yet); etcd's error otherwise.
  absl::Status EnableAuth(
      const std::string& root_password,
      const std::vector<std::pair<std::string, std::string>>& users = {});
  // Makes etcd forget every token it issued to root, as a restarted member
  // or an expired token would, but deterministically: sets root's password
  // again to the same value (etcdctl user passwd), which etcd answers by
  // dropping the user's tokens. REQUIRES: EnableAuth succeeded.
  absl::Status RevokeRootTokens();
  // Credentials for an EtcdClient: root and the password of EnableAuth.
  const cluster::EtcdAuthOptions& root_auth() const { return probe_auth_; }

 private:
  EtcdProcess() = default;
  absl::Status Spawn();
  absl::Status WaitUntilServing(absl::Duration timeout);

  EtcdServerTls tls_;
  cluster::EtcdAuthOptions probe_auth_;
  std::string binary_;
  std::string data_dir_;
  std::string log_path_;
  int client_port_ = 0;
  int peer_port_ = 0;
  std::string endpoint_;
  pid_t pid_ = -1;
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_CLUSTER_ETCD_PROCESS_H_
