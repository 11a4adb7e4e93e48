#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12 machine: makes a minimal bookworm root
# (debootstrap --variant=minbase, plus what a new user has before reading the README:
# build-essential cmake git ca-certificates python3), puts a clean clone of the current commit
# (HEAD; uncommitted changes are not part of it) into /root/cafshm there, and runs, as root,
# without standard input and without ccache:
#     scripts/run.sh
#     scripts/test.sh [CTEST ARGS...]
# Fails if either fails, e.g. because scripts/setup.sh does not install a package the build,
# the tests or the demo need, whatever this machine has installed.
#
# usage: scripts/fresh-check.sh [--refresh] [-- CTEST ARGS...]
#   --refresh   make the base root anew (otherwise it is reused until it is 7 days old)
#   CTEST ARGS  go to scripts/test.sh (default: none, i.e. every test)
#
# Needs root (debootstrap, chroot, mounts) and the Debian archive ($CAFSHM_DEBIAN_MIRROR, default
# http://deb.debian.org/debian). The base root is kept as a tarball in $CAFSHM_FRESH_CACHE
# (default /var/cache/cafshm); each run unpacks it into a directory there and removes it again.
# The packages scripts/setup.sh downloads are kept there too (apt-archives/), not installed ones.
# Everything runs in its own mount and PID namespace: /proc, /sys, /dev, /dev/pts and /dev/shm of
# the root are mounted only there, and every process and mount of a run ends with it, also when
# this script is interrupted, fails or is killed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CAFSHM_FRESH_CACHE:-/var/cache/cafshm}
mirror=${CAFSHM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the README expects a new user to have: a compiler, CMake and git to get the sources, the
# CA certificates for git/https, python3 (present on nearly every Debian install).
user_packages=(build-essential cmake git ca-certificates python3)
base="$cache/bookworm-minbase-$(printf '%s+' "${user_packages[@]}" | sed 's/+$//').tar"
max_age_days=7
refresh=0
ctest_args=()

while [ $# -gt 0 ]; do
  case "$1" in
    --refresh) refresh=1; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "fresh-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "fresh-check: $*" >&2; }
fail() {
  say "$*"
  exit 1
}
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, mounts): run it with sudo"
rev=$(git -C "$root" rev-parse HEAD)
[ -z "$(git -C "$root" status --porcelain --untracked-files=no)" ] \
  || say "uncommitted changes are not checked, only commit ${rev:0:12}"

mkdir -p "$cache"
start=$SECONDS

# True if anything is mounted at or below directory $1 (in this mount namespace).
mounted_below() {
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' \
    /proc/self/mountinfo
}

# Removes a directory this script made, never crossing into a mounted file system.
remove_dir() {
  [ -d "$1" ] || return 0
  if mounted_below "$1"; then
    umount -R -l "$1" 2>/dev/null || true
    mounted_below "$1" && { say "left $1 in place: something is still mounted below it"; return 1; }
  fi
  rm -rf --one-file-system "$1"
}

# Directories of earlier runs that were killed before they could remove theirs.
for dir in "$cache"/root.* "$cache"/base.*; do
  [ -d "$dir" ] || continue
  pid=${dir##*.}
  case "$pid" in ''|*[!0-9]*) continue ;; esac
  kill -0 "$pid" 2>/dev/null || remove_dir "$dir" || true
done

work=""
runner=""
cleaning_up=0
cleanup() {
  local status=$?
  # The signal traps stay set (a signal meanwhile does nothing): bash ends itself when a signal
  # that arrived during its trap (`timeout` sends two) finds the trap reset to the default.
  cleaning_up=1
  trap - EXIT
  if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
    # unshare blocks SIGTERM while it waits; SIGKILL ends it, and its death kills the
    # namespace's first process (--kill-child), which ends every process of the namespace.
    kill -KILL "$runner" 2>/dev/null || true
    wait "$runner" 2>/dev/null || true
  fi
  if [ -n "$work" ]; then
    # The namespace's mounts go with its last process, which may take a moment after the kill.
    for _ in $(seq 100); do mounted_below "$work" || break; sleep 0.1; done
    remove_dir "$work" || status=1
  fi
  exit "$status"
}
trap cleanup EXIT
exit_on_signal() { # exit status
  [ "$cleaning_up" -eq 1 ] || exit "$1"
}
trap 'exit_on_signal 130' INT
trap 'exit_on_signal 143' TERM

# Runs "$@" in a new mount and PID namespace, in the background so that a signal to this script
# is handled within 0.1 s; returns its status. The namespace ends when this script ends, however.
# Polls rather than `wait`s on the running runner: bash leaves `wait` on a trapped signal by a
# jump out of its signal handler, and a second signal soon after jumps into a `wait` that has
# returned, which ends bash before its traps run.
in_namespace() {
  setpriv --pdeathsig KILL -- unshare --mount --propagation private --pid --fork --kill-child \
    -- "$@" </dev/null 9>&- &
  runner=$!
  local status=0
  while kill -0 "$runner" 2>/dev/null; do sleep 0.1; done
  wait "$runner" || status=$?
  runner=""
  return "$status"
}

# The commands run inside a namespace by in_root: mount what a booted system has, then chroot.
# $1 = the root, $2 = a directory to use as its apt archive cache (downloaded packages only, kept
# between runs to spare the mirror; what is installed is not kept) or ""; the rest is the
# command. Stays PID 1 of the namespace and reaps orphans.
read -r -d '' enter_root <<'EOF' || true
set -euo pipefail
r=$1
archives=$2
shift 2
mount -t proc proc "$r/proc"
mount -t sysfs -o ro sysfs "$r/sys"
mount -t tmpfs -o mode=755,size=16m dev "$r/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<<"$node"
  mknod -m 666 "$r/dev/$name" c "$major" "$minor"
done
mkdir -m 755 "$r/dev/pts"
mkdir -m 1777 "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$r/dev/pts"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
ln -s pts/ptmx "$r/dev/ptmx"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
if [ -n "$archives" ]; then
  mkdir -p "$archives" "$r/var/cache/apt/archives"
  mount --bind "$archives" "$r/var/cache/apt/archives"
fi
cp /etc/resolv.conf "$r/etc/resolv.conf"
status=0
chroot "$r" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash LANG=C.UTF-8 \
  TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" || status=$?
exit "$status"
EOF
in_root() { # root, apt archive cache or "", command...
  in_namespace bash -c "$enter_root" enter-root "$@"
}

# The base root: minbase plus the new user's packages, as a tarball; made once, under a lock.
make_base() {
  local dir="$cache/base.$$"
  say "making the base root (debootstrap --variant=minbase bookworm, $mirror)"
  remove_dir "$dir"
  work=$dir
  in_namespace debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; fail "debootstrap failed (log: $cache/debootstrap.log)"; }
  cat >"$dir/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://security.debian.org/debian-security bookworm-security main
EOF
  in_root "$dir" "" bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
    -y -qq --no-install-recommends ${user_packages[*]} >/dev/null && apt-get clean \
    && rm -rf /var/lib/apt/lists/*" || fail "cannot install ${user_packages[*]} into the base root"
  tar -C "$dir" -cf "$base.tmp" . && mv "$base.tmp" "$base"
  remove_dir "$dir"
  work=""
}

# One run at a time on a machine: they share the cache, and scripts/run.sh inside listens on the
# demo's fixed port of the shared network.
exec 9>"$cache/lock"
flock -n 9 || { say "waiting for another fresh-check on this machine to end"; flock 9; }
if [ "$refresh" -eq 1 ] || [ ! -f "$base" ] || [ -n "$(find "$base" -mtime +"$max_age_days")" ]; then
  command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
      >/dev/null
  }
  make_base
fi
say "base root ready after $((SECONDS - start)) s ($base)"

work="$cache/root.$$"
mkdir -m 755 "$work"
tar -C "$work" -xf "$base"
git -c advice.detachedHead=false clone -q --no-local "$root" "$work/root/cafshm"
git -C "$work/root/cafshm" checkout -q --detach "$rev"
say "commit ${rev:0:12} cloned; running the README's commands in the fresh root"

printf -v args ' %q' "${ctest_args[@]}"
[ ${#ctest_args[@]} -eq 0 ] && args=""
if in_root "$work" "$cache/apt-archives" bash -c "cd /root/cafshm && scripts/run.sh && scripts/test.sh$args"
then
  say "passed in $((SECONDS - start)) s: scripts/run.sh and scripts/test.sh$args on a fresh Debian 12"
else
  fail "FAILED after $((SECONDS - start)) s on a fresh Debian 12 (see above)"
fi
