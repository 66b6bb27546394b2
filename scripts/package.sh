#!/usr/bin/env bash
# The release files, from one command, into target/dist/:
#   dlock-VERSION-windows-x86_64.zip    dlockd.exe, dlock.exe, README.md, LICENSE, components/
#   dlock-VERSION-linux-x86_64.tar.gz   dlockd, dlock (static, musl: they run on any
#                                       distribution), README.md, LICENSE, components/
#   SHA256SUMS                          of both archives (`sha256sum -c SHA256SUMS`)
# and checks each archive by unpacking it in a fresh folder and running `dlockd --version` from
# it (the Windows one under Wine). The Linux tarball also carries the Dockerfile, whose image is
# built from the unpacked tarball (the static binaries, not the source); no container engine
# runs on the machines this is made on, so the check is that everything it copies is there.
# Installs what a fresh Debian machine lacks: the two Rust targets, MinGW-w64, musl-gcc, Wine.
#
#   scripts/package.sh [--profile PROFILE]      (default: release, the files one ships)
#
# CI runs it with `--profile dev` after scripts/test.sh (.ci/run): that checks everything the
# script does — both cross builds, the static link, the archives' contents, the sums,
# `--version` from each unpacked archive — while reusing the Windows build the Windows suite
# just made, where the two release builds (fat LTO, one codegen unit) would add about a quarter
# of an hour on CI's two cores. The dev archives say so in their names.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "package.sh: $*" >&2; }

profile=release
while (($#)); do
  case "$1" in
    --profile) profile="${2:?--profile needs a profile name}"; shift 2 ;;
    *) echo "usage: scripts/package.sh [--profile PROFILE]" >&2; exit 2 ;;
  esac
done
# Cargo's folder for a profile, and the archives' suffix for anything but a release.
case "$profile" in
  dev) profile_dir=debug; suffix=-dev ;;
  release) profile_dir=release; suffix= ;;
  *) profile_dir="$profile"; suffix="-$profile" ;;
esac
# A dev archive carries no debug info (it would make the binaries ten times larger); the same
# setting as the Windows suite's build (scripts/windows.sh), so that build is reused.
export CARGO_PROFILE_DEV_DEBUG=0

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
windows=x86_64-pc-windows-gnu
linux=x86_64-unknown-linux-musl
out="${CARGO_TARGET_DIR:-$root/target}"
dist="$root/target/dist"

need_apt=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need_apt+=(gcc-mingw-w64-x86-64)
command -v musl-gcc >/dev/null 2>&1 || need_apt+=(musl-tools)
command -v wine >/dev/null 2>&1 || need_apt+=(wine wine64)
command -v zip >/dev/null 2>&1 || need_apt+=(zip)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
if ((${#need_apt[@]})); then
  say "apt-get install ${need_apt[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >&2
fi
for target in "$windows" "$linux"; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
done

for target in "$linux" "$windows"; do
  say "cargo build --profile $profile --target $target"
  cargo build --profile "$profile" --locked --target "$target" --bins >&2
done

rm -rf "$dist" && mkdir -p "$dist"
# stage NAME BIN...: a folder NAME in $dist/stage with the binaries and the shared files.
stage() {
  local folder="$dist/stage/$1"
  shift
  mkdir -p "$folder"
  cp "$@" README.md LICENSE "$folder/"
  cp -r components "$folder/components"
  echo "$folder"
}
linux_name="dlock-$version-linux-x86_64$suffix"
windows_name="dlock-$version-windows-x86_64$suffix"
stage "$linux_name" "$out/$linux/$profile_dir/dlockd" "$out/$linux/$profile_dir/dlock" Dockerfile >/dev/null
stage "$windows_name" "$out/$windows/$profile_dir/dlockd.exe" "$out/$windows/$profile_dir/dlock.exe" >/dev/null
# Fixed owners and modes, so the archives do not depend on who built them.
tar -C "$dist/stage" --owner=0 --group=0 --numeric-owner -czf "$dist/$linux_name.tar.gz" "$linux_name"
(cd "$dist/stage" && zip -qr "$dist/$windows_name.zip" "$windows_name")
rm -rf "$dist/stage"
(cd "$dist" && sha256sum "$linux_name.tar.gz" "$windows_name.zip" >SHA256SUMS)

# --- Checks: each archive as a user gets it --------------------------------------------
say "checking the archives"
(cd "$dist" && sha256sum --quiet -c SHA256SUMS)
check="$dist/check"
rm -rf "$check" && mkdir -p "$check/linux" "$check/windows"
tar -C "$check/linux" -xzf "$dist/$linux_name.tar.gz"
linux_dlockd="$check/linux/$linux_name/dlockd"
file "$linux_dlockd" | grep -Eq "statically linked|static-pie linked" \
  || { say "$linux_dlockd is not statically linked: $(file "$linux_dlockd")"; exit 1; }
expected="$("$linux_dlockd" --version)"
[[ -n "$expected" ]] || { say "dlockd --version printed nothing"; exit 1; }
"$check/linux/$linux_name/dlock" --help >/dev/null
# The Dockerfile's build context is the unpacked folder: whatever it copies must be in it.
while read -r source; do
  [[ -e "$check/linux/$linux_name/$source" ]] \
    || { say "the Dockerfile copies $source, which the Linux archive lacks"; exit 1; }
done < <(sed -n 's/^COPY \(.*\) [^ ]*$/\1/p' "$check/linux/$linux_name/Dockerfile" | tr ' ' '\n')

unzip -q "$dist/$windows_name.zip" -d "$check/windows"
# Wine 8 lacks ProcessPrng, which Rust's standard library calls: the test shim goes beside
# the unpacked .exe for this check only (scripts/windows-prng-shim.c; never shipped).
win_folder="$check/windows/$windows_name"
x86_64-w64-mingw32-gcc -O2 -shared -o "$win_folder/bcryptprimitives.dll" \
  scripts/windows-prng-shim.c -ladvapi32
export WINEPREFIX="$root/target/wine" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# Into a file, not a pipe: Wine's background processes inherit the output and keep it open.
wine "$win_folder/dlockd.exe" --version </dev/null >"$check/windows-version" 2>/dev/null
windows_version="$(tr -d '\r' <"$check/windows-version")"
[[ "$windows_version" == "$expected" ]] \
  || { say "dlockd.exe --version printed '$windows_version', not '$expected'"; exit 1; }
# No Wine process of this check outlives it.
wineserver -k 2>/dev/null || true
rm -rf "$check"

say "dlockd --version: $expected (Linux static and Windows under Wine)"
ls -l "$dist" >&2
cat "$dist/SHA256SUMS"
