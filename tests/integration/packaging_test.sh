#!/usr/bin/env bash
# The Debian packages CPack makes from this build: refbus-broker, refbus-agent and
# refbus-tools hold what deploy/README.md says they hold (binaries, units, example configs
# under /etc/refbus), depend on the right libraries, their binaries run from the unpacked
# package, and the postinst makes the system user and the 0750/0700 folders (run in a
# private mount namespace over a copy of /etc and /var/lib: the machine is left as it was).
#   tests/integration/packaging_test.sh BUILD_DIR
set -euo pipefail
build=$1
fail() { echo "FAIL - $*"; exit 1; }
for tool in cpack dpkg-deb dpkg-shlibdeps unshare adduser; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (deploy/install-deps.sh installs it)"
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1) ||
  { cat "$work/cpack.log"; fail "cpack did not make the packages"; }

declare -A want=(
  [refbus-broker]="./usr/bin/refbus-broker ./usr/lib/systemd/system/refbus-broker.service ./etc/refbus/broker.toml.example"
  [refbus-agent]="./usr/bin/refbus-agent ./usr/lib/systemd/system/refbus-agent.service ./etc/refbus/agent.toml.example ./usr/share/doc/refbus-agent/API.md"
  [refbus-tools]="./usr/bin/refbus-keys ./usr/bin/refbus-audit ./usr/share/doc/refbus-tools/SECURITY.md"
)
for pkg in refbus-broker refbus-agent refbus-tools; do
  deb=$(ls "$work/out/${pkg}_"*.deb 2>/dev/null | head -1)
  [[ -n "$deb" ]] || fail "no $pkg package among: $(ls "$work/out")"
  info=$(dpkg-deb -I "$deb")
  grep -q "^ Package: $pkg$" <<<"$info" || fail "$deb is not package $pkg"
  depends=$(sed -n 's/^ Depends: //p' <<<"$info")
  # dpkg-shlibdeps found the shared libraries the binaries link.
  for lib in libc6 libstdc++6; do
    [[ "$depends" == *"$lib"* ]] || fail "$pkg does not depend on $lib: '$depends'"
  done
  if [[ $pkg != refbus-tools ]]; then
    for lib in libzmq5 libsodium23 liblmdb0 "refbus-tools ("; do
      [[ "$depends" == *"$lib"* ]] || fail "$pkg does not depend on $lib: '$depends'"
    done
  fi
  contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
  for f in ${want[$pkg]}; do
    grep -qxF "$f" <<<"$contents" || fail "$pkg lacks $f"
  done
  # Nothing that is a key, a token or data ships in a package.
  if grep -E '\.key$|token|\.mdb$' <<<"$contents"; then fail "$pkg ships secrets or data"; fi
  # Nor does a test tool (tests/tools: refbus-loadgen).
  if grep -E 'loadgen' <<<"$contents"; then fail "$pkg ships a test tool"; fi
  mkdir -p "$work/root"
  dpkg-deb -x "$deb" "$work/root"
  dpkg-deb -e "$deb" "$work/control-$pkg"
  echo "ok - $pkg: $(wc -l <<<"$contents") paths, depends on $depends"
done
# The unpacked binaries run (their libraries are the system's).
for b in refbus-broker refbus-agent refbus-keys refbus-audit; do
  "$work/root/usr/bin/$b" --help >"$work/$b.help" 2>&1 || fail "$b --help from the package failed: $(head -3 "$work/$b.help")"
done
# The load generator (send, receive) is a test tool, not a verb of the shipped agent.
if grep -E '^ +(send|receive) ' "$work/refbus-agent.help"; then
  fail "the packaged refbus-agent has the test tool's send/receive"
fi
echo "ok - the packaged binaries run"

# The broker's postinst, as dpkg runs it at install, twice (an upgrade runs it again).
postinst="$work/control-refbus-broker/postinst"
[[ -x "$postinst" ]] || fail "refbus-broker has no executable postinst"
cmp -s "$postinst" "$work/control-refbus-agent/postinst" || fail "broker and agent postinst differ"
cp -a /etc "$work/etc"
mkdir -p "$work/varlib"
unshare --mount bash -euc '
  work=$1 postinst=$2
  mount --make-rprivate /
  mount --bind "$work/etc" /etc
  mount --bind "$work/varlib" /var/lib
  "$postinst" configure
  "$postinst" configure
  getent passwd refbus | awk -F: "{ if (\$3 >= 1000) exit 1; print \"user\", \$1, \$3, \$7 }"
  stat -c "%n %a %U %G" /etc/refbus /var/lib/refbus
' _ "$work" "$postinst" >"$work/postinst.out" 2>&1 || { cat "$work/postinst.out"; fail "postinst failed"; }
cat "$work/postinst.out"
grep -q '^user refbus [0-9]* /usr/sbin/nologin$' "$work/postinst.out" || fail "no system user refbus with nologin"
grep -qx '/etc/refbus 750 root refbus' "$work/postinst.out" || fail "/etc/refbus is not 0750 root:refbus"
grep -qx '/var/lib/refbus 700 refbus refbus' "$work/postinst.out" || fail "/var/lib/refbus is not 0700 refbus:refbus"
getent passwd refbus >/dev/null && fail "the test's postinst leaked the refbus user into this machine"
echo "ok - postinst makes the refbus system user and its folders; this machine unchanged"
