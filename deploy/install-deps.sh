#!/usr/bin/env bash
# Installs exactly the Debian 12 packages refbus needs to build, test and run its demo,
# and only those that are missing. Works as root or through sudo.
#
#   deploy/install-deps.sh           build + tests + demo
#   deploy/install-deps.sh --fuzz    also clang and libFuzzer (fuzz build tree)
#   deploy/install-deps.sh --bench   also the peer brokers the benchmarks compare against
#                                    (RabbitMQ, Mosquitto and their C clients; deploy/bench.sh)
#                                    and gnuplot (bench.sh plots latency against load)
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake pkg-config
  # libraries (headers + shared objects)
  libzmq3-dev cppzmq-dev libsodium-dev libprotobuf-dev protobuf-compiler
  liblmdb-dev libspdlog-dev libfmt-dev libssl-dev
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libcpp-httplib-dev
  # the agent API tests make throwaway TLS certificates with the openssl CLI
  openssl
  # Prometheus exposition of the broker's and agent's /metrics (core library only)
  prometheus-cpp-dev
  # tests (jq reads the brokers' --status --json and the linkage demo's answers; iproute2
  # makes the network namespaces of the federation link-cut test)
  libgtest-dev libgmock-dev jq iproute2
  # promtool (from prometheus) checks the broker's /metrics exposition in the metrics test
  prometheus
  # systemd-analyze checks the units in deploy/systemd
  systemd
  # gdb stops the broker between a commit and its acks in the crash_stream test
  gdb
  # the packaging test: cpack's DEB generator (dpkg-shlibdeps, file) and the postinst's
  # adduser, run in a private mount namespace (unshare)
  dpkg-dev file adduser util-linux
  # headless chromium renders refbus-audit report's HTML page in its integration test;
  # the console's browser test drives it through chromedriver with selenium, and needs a
  # Korean font to render (and screenshot) the pages
  chromium chromium-driver python3-selenium fonts-nanum
  # fuzz smoke runs in the test suite (clang + libFuzzer, own build tree); the guards run
  # clang's thread-safety analysis and clang-tidy's function-size check (tests/guards)
  clang libclang-rt-14-dev clang-tidy
)

for arg in "$@"; do
  case "$arg" in
    --fuzz) ;;  # clang is part of the default set: the suite runs a fuzz smoke test
    --bench) packages+=(rabbitmq-server mosquitto librabbitmq-dev libmosquitto-dev gnuplot-nox) ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: missing packages and neither root nor sudo: install them by hand:" >&2
  echo "  apt-get install ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
