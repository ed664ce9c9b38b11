// refbus_cut_proxy: a TCP forwarder for integration tests that can cut and heal a link.
//
//   refbus_cut_proxy --listen 127.0.0.1:0 --to 127.0.0.1:PORT [--port-file F]
//
// Forwards bytes both ways for any number of connections: each accepted connection gets
// its own connection to --to. Once listening, the bound port is written to F (a temporary
// file renamed over F, so a reader sees the whole number or nothing).
//
// Signals:
//   SIGUSR1  cut: every open connection is closed at once, on both sides, with a reset
//            (SO_LINGER 0: nothing buffered is flushed, as if the link broke); while cut,
//            new connections are accepted and reset at once, so a peer that reconnects
//            sees a dead link rather than a refused port.
//   SIGUSR2  heal: new connections are forwarded again.
//   SIGTERM, SIGINT  exit 0.
// Logs each cut and heal, and connection counts, on stderr.
//
// One thread; non-blocking sockets, one bounded buffer per direction and poll(2). A
// direction reads only while its buffer has room and asks for POLLOUT only while it holds
// bytes, so the loop sleeps in poll until there is work (no busy spinning); partial writes
// stay in the buffer. Signals reach the loop through a self-pipe. Exit codes: 0 on SIGTERM
// or SIGINT, 1 on a start-up error, 2 on a usage error.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr size_t kBufferBytes = size_t{256} << 10;  // per direction

volatile sig_atomic_t g_signal_fd = -1;

void OnSignal(int sig) {
  const int saved = errno;
  const auto byte = static_cast<unsigned char>(sig);
  if (g_signal_fd >= 0) (void)!::write(g_signal_fd, &byte, 1);  // full pipe: a wake-up is queued
  errno = saved;
}

std::string ErrnoText(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof(buf));  // GNU strerror_r: returns the text
}

void Log(const std::string& line) { std::cerr << "refbus_cut_proxy: " << line << std::endl; }

bool SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 &&
         ::fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

// Closes with a reset: the peer sees the connection broken, not a clean end of stream.
void AbortClose(int fd) {
  if (fd < 0) return;
  struct linger lg {};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);
}

// "HOST:PORT" with a numeric IPv4 host. Port 0 is allowed (for --listen).
std::optional<sockaddr_in> ParseAddress(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return std::nullopt;
  std::string host = s.substr(0, colon), port = s.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) {
    return std::nullopt;
  }
  unsigned long p = std::stoul(port);
  if (p > 65535) return std::nullopt;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(p));
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return std::nullopt;
  return a;
}

// Bytes read from one socket, waiting to be written to the other.
struct Direction {
  std::vector<char> buf = std::vector<char>(kBufferBytes);
  size_t start = 0;   // first unwritten byte
  size_t end = 0;     // one past the last read byte
  bool eof = false;   // the source ended its stream
  bool shut = false;  // the end was passed on (shutdown(SHUT_WR) on the destination)

  size_t pending() const { return end - start; }
  bool has_room() const { return !eof && end < buf.size(); }
};

// One client connection and its connection to the target.
struct Pair {
  int client = -1;
  int upstream = -1;
  bool connecting = true;  // the non-blocking connect to the target is in progress
  Direction up;            // client -> upstream
  Direction down;          // upstream -> client
  uint64_t id = 0;
};

enum class IoResult { kOk, kClosed };

// Reads what fits into d from fd. kClosed on a socket error (not on end of stream).
IoResult ReadInto(int fd, Direction& d) {
  while (d.has_room()) {
    ssize_t n = ::recv(fd, d.buf.data() + d.end, d.buf.size() - d.end, 0);
    if (n > 0) {
      d.end += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      d.eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return IoResult::kClosed;
  }
  return IoResult::kOk;
}

// Writes what d holds to fd; passes the end of stream on once d is drained.
IoResult WriteFrom(int fd, Direction& d) {
  while (d.pending() > 0) {
    ssize_t n = ::send(fd, d.buf.data() + d.start, d.pending(), MSG_NOSIGNAL);
    if (n > 0) {
      d.start += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return IoResult::kClosed;
  }
  if (d.pending() == 0) {
    d.start = d.end = 0;  // the whole buffer is free again
    if (d.eof && !d.shut) {
      d.shut = true;
      if (::shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN) return IoResult::kClosed;
    }
  }
  return IoResult::kOk;
}

class Proxy {
 public:
  Proxy(int listener, sockaddr_in target, int signal_fd)
      : listener_(listener), target_(target), signal_fd_(signal_fd) {}

  // Runs until SIGTERM or SIGINT. Returns the exit code.
  int Run() {
    std::vector<pollfd> fds;
    while (true) {
      fds.clear();
      fds.push_back({signal_fd_, POLLIN, 0});
      fds.push_back({listener_, POLLIN, 0});
      for (const auto& p : pairs_) {
        short ce = 0, ue = 0;
        if (!p->connecting) {
          if (p->up.has_room()) ce |= POLLIN;
          if (p->down.pending() > 0) ce |= POLLOUT;
          if (p->down.has_room()) ue |= POLLIN;
          if (p->up.pending() > 0) ue |= POLLOUT;
        } else {
          ue = POLLOUT;  // the connect's completion
        }
        // Errors and hang-ups are reported even with no events asked for.
        fds.push_back({p->client, ce, 0});
        fds.push_back({p->upstream, ue, 0});
      }
      int n = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        Log("poll: " + ErrnoText(errno));
        return 1;
      }
      if (fds[0].revents != 0) {
        std::optional<int> code = TakeSignals();
        if (code) {
          for (auto& p : pairs_) Close(*p);
          pairs_.clear();
          Log("stopping on signal");
          return *code;
        }
        continue;  // a cut may have closed what fds lists: poll again
      }
      // Service the pairs polled this round (pairs_ and fds line up from index 2).
      size_t count = (fds.size() - 2) / 2;
      for (size_t i = 0; i < count; ++i) {
        Pair& p = *pairs_[i];
        if (p.client < 0) continue;  // closed by a cut this round
        if (!Service(p, fds[2 + 2 * i].revents, fds[3 + 2 * i].revents)) {
          // Both streams ended: a plain close lets the kernel deliver what it still holds.
          // Anything else broke one side: reset the other too.
          Close(p, /*graceful=*/p.up.shut && p.down.shut);
          --open_;
          Log("connection " + std::to_string(p.id) + " closed (open: " + std::to_string(open_) +
              ")");
        }
      }
      std::erase_if(pairs_, [](const std::unique_ptr<Pair>& p) { return p->client < 0; });
      if (fds[1].revents != 0) Accept();
    }
  }

 private:
  // Handles the signals queued in the self-pipe. Returns the exit code if it is time to stop.
  std::optional<int> TakeSignals() {
    std::array<unsigned char, 64> sigs{};
    while (true) {
      ssize_t n = ::read(signal_fd_, sigs.data(), sigs.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      for (ssize_t i = 0; i < n; ++i) {
        int sig = sigs[static_cast<size_t>(i)];
        if (sig == SIGTERM || sig == SIGINT) return 0;
        if (sig == SIGUSR1) CutAll();
        if (sig == SIGUSR2) Heal();
      }
    }
  }

  void CutAll() {
    size_t closed = pairs_.size();
    for (auto& p : pairs_) Close(*p);
    pairs_.clear();
    open_ = 0;
    bool was_cut = cut_;
    cut_ = true;
    refused_ = 0;
    Log(std::string(was_cut ? "cut (already cut)" : "cut") + ": reset " + std::to_string(closed) +
        " open connections; new connections are reset until healed");
  }

  void Heal() {
    if (!cut_) {
      Log("heal (was not cut)");
      return;
    }
    cut_ = false;
    Log("healed: forwarding again; " + std::to_string(refused_) +
        " connections were reset while cut");
  }

  void Accept() {
    while (true) {
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) Log("accept: " + ErrnoText(errno));
        return;  // EMFILE and the like: the backlog waits for the next round
      }
      ++accepted_;
      if (cut_) {
        ++refused_;
        AbortClose(fd);
        continue;
      }
      auto p = std::make_unique<Pair>();
      p->id = accepted_;
      p->client = fd;
      p->upstream = ::socket(AF_INET, SOCK_STREAM, 0);
      if (p->upstream < 0 || !SetNonBlocking(p->client) || !SetNonBlocking(p->upstream)) {
        Log("connection " + std::to_string(p->id) + ": socket setup: " + ErrnoText(errno));
        Close(*p);
        continue;
      }
      int one = 1;
      (void)::setsockopt(p->client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      (void)::setsockopt(p->upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      int rc = ::connect(p->upstream, reinterpret_cast<const sockaddr*>(&target_), sizeof(target_));
      if (rc == 0) {
        p->connecting = false;
      } else if (errno != EINPROGRESS) {
        Log("connection " + std::to_string(p->id) + ": connect to the target: " + ErrnoText(errno));
        Close(*p);
        continue;
      }
      ++open_;
      Log("connection " + std::to_string(p->id) + " accepted (open: " + std::to_string(open_) +
          ", accepted in all: " + std::to_string(accepted_) + ")");
      pairs_.push_back(std::move(p));
    }
  }

  // Moves bytes for one pair. Returns false once the pair is finished or broken.
  static bool Service(Pair& p, short client_ev, short upstream_ev) {
    if (p.connecting) {
      if (upstream_ev == 0) return (client_ev & (POLLERR | POLLHUP)) == 0;
      int err = 0;
      socklen_t len = sizeof(err);
      if (::getsockopt(p.upstream, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) {
        Log("connection " + std::to_string(p.id) + ": connect to the target: " + ErrnoText(err));
        return false;
      }
      p.connecting = false;
      // Fall through: the client may already have sent bytes.
      client_ev |= POLLIN;
    }
    // Read and write regardless of which flag woke us: the calls are non-blocking, and a
    // POLLHUP with data still queued must be read to the end before the pair closes.
    if (client_ev != 0 && ReadInto(p.client, p.up) != IoResult::kOk) return false;
    if (upstream_ev != 0 && ReadInto(p.upstream, p.down) != IoResult::kOk) return false;
    if (WriteFrom(p.upstream, p.up) != IoResult::kOk) return false;
    if (WriteFrom(p.client, p.down) != IoResult::kOk) return false;
    if ((client_ev & POLLERR) != 0 || (upstream_ev & POLLERR) != 0) return false;
    // Done when both streams ended and were passed on.
    return !(p.up.shut && p.down.shut);
  }

  static void Close(Pair& p, bool graceful = false) {
    for (int* fd : {&p.client, &p.upstream}) {
      if (graceful && *fd >= 0) {
        ::close(*fd);
      } else {
        AbortClose(*fd);
      }
      *fd = -1;
    }
  }

  int listener_;
  sockaddr_in target_;
  int signal_fd_;
  std::vector<std::unique_ptr<Pair>> pairs_;
  bool cut_ = false;
  uint64_t accepted_ = 0;
  uint64_t refused_ = 0;
  size_t open_ = 0;
};

int Usage(const std::string& why) {
  std::cerr << "refbus_cut_proxy: " << why
            << "\nusage: refbus_cut_proxy --listen HOST:PORT --to HOST:PORT [--port-file F]\n"
               "  SIGUSR1 cut, SIGUSR2 heal, SIGTERM exit 0\n";
  return 2;
}

bool WritePortFile(const std::string& path, uint16_t port) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return false;
  bool ok = std::fprintf(f, "%u\n", static_cast<unsigned>(port)) > 0;
  ok = (std::fclose(f) == 0) && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_arg, to_arg, port_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      Usage("a TCP forwarder that can cut and heal its connections");
      return 0;
    }
    if (i + 1 >= argc) return Usage("missing value for " + a);
    if (a == "--listen") {
      listen_arg = argv[++i];
    } else if (a == "--to") {
      to_arg = argv[++i];
    } else if (a == "--port-file") {
      port_file = argv[++i];
    } else {
      return Usage("unknown option " + a);
    }
  }
  if (listen_arg.empty() || to_arg.empty()) return Usage("--listen and --to are required");
  auto listen_addr = ParseAddress(listen_arg);
  auto target = ParseAddress(to_arg);
  if (!listen_addr) return Usage("--listen wants IPV4:PORT, not '" + listen_arg + "'");
  if (!target || target->sin_port == 0) return Usage("--to wants IPV4:PORT, not '" + to_arg + "'");

  std::array<int, 2> pipe_fds{};
  if (::pipe(pipe_fds.data()) != 0 || !SetNonBlocking(pipe_fds[0]) ||
      !SetNonBlocking(pipe_fds[1])) {
    Log("self-pipe: " + ErrnoText(errno));
    return 1;
  }
  g_signal_fd = pipe_fds[1];
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2}) sigaction(sig, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  if (listener < 0 || !SetNonBlocking(listener) ||
      ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::bind(listener, reinterpret_cast<const sockaddr*>(&*listen_addr), sizeof(*listen_addr)) !=
          0 ||
      ::listen(listener, 128) != 0) {
    Log("cannot listen on " + listen_arg + ": " + ErrnoText(errno));
    return 1;
  }
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  if (::getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    Log("getsockname: " + ErrnoText(errno));
    return 1;
  }
  uint16_t port = ntohs(bound.sin_port);
  if (!port_file.empty() && !WritePortFile(port_file, port)) {
    Log("cannot write the port file " + port_file + ": " + ErrnoText(errno));
    return 1;
  }
  Log("listening on port " + std::to_string(port) + ", forwarding to " + to_arg);
  return Proxy(listener, *target, pipe_fds[0]).Run();
}
