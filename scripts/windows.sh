# The Windows suite's setup, sourced by scripts/test.sh: dlockd.exe and dlock.exe cross-built
# for x86_64-pc-windows-gnu and run under Wine, so the Windows build is run and tested on every
# CI run instead of only type-checked. It installs what a fresh Debian machine lacks (the Rust
# target, MinGW-w64, Wine), builds both binaries and two small test-only files, makes one
# Wine prefix under target/ that every test shares (Wine takes seconds to create one), and
# exports where everything is for tests/it/windows.rs. Any failure here fails the run.
#
# Test-only, never shipped: bcryptprimitives.dll, from scripts/windows-prng-shim.c, beside the
# .exe files (Wine 8 lacks ProcessPrng, which Rust's standard library calls); console-event.exe,
# from scripts/windows-console-event.c, which delivers the console control events Wine cannot.
#
# Sourced after test.sh has started its servers: the wineserver joins them (pids, $servers).
#
# The binaries are a debug build without debug info: under Wine the suite measures behaviour,
# not speed, and a release build of both takes twice as long on CI's two cores.

win_target=x86_64-pc-windows-gnu
win_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
win_say() { echo "windows.sh: $*" >&2; }

win_apt=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || win_apt+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null 2>&1 || win_apt+=(wine wine64)
if ((${#win_apt[@]})); then
  win_say "apt-get install ${win_apt[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${win_apt[@]}" >&2
fi
if ! rustup target list --installed | grep -qx "$win_target"; then
  win_say "rustup target add $win_target"
  rustup target add "$win_target" >&2
fi

win_say "cargo build --target $win_target --bins"
CARGO_PROFILE_DEV_DEBUG=0 cargo build --locked --target "$win_target" --bins >&2
win_bin="${CARGO_TARGET_DIR:-$win_root/target}/$win_target/debug"

x86_64-w64-mingw32-gcc -O2 -shared -o "$win_bin/bcryptprimitives.dll" \
  "$win_root/scripts/windows-prng-shim.c" -ladvapi32
x86_64-w64-mingw32-gcc -O2 -Wall -Werror -o "$win_bin/console-event.exe" \
  "$win_root/scripts/windows-console-event.c"

# One prefix for the whole run; no Mono or Gecko (their install prompts would wait forever).
export WINEPREFIX="$win_root/target/wine"
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# A new prefix is made once, by a wineserver of its own (`wineboot -i` leaves two copies of
# Wine's service manager running, which then refuse each other's calls).
if [[ ! -f "$WINEPREFIX/system.reg" ]]; then
  win_say "wineboot -i ($WINEPREFIX)"
  wineboot -i </dev/null >/dev/null 2>&1
  wineserver -k || true
fi
# One wineserver for the whole run, and Wine's own background processes (services.exe and the
# rest) started here with /dev/null for output: started by a test's first Wine process instead,
# they would inherit its pipes and hold them open, so its output would never end. Stopped with
# the servers: `wineserver -k` ends every process of the prefix, which a plain kill of the
# server would leave running.
mkdir -p "$servers/wine"
pids+=("$servers/wine/wineserver.pid")
(
  trap 'wineserver -k; exit 0' TERM
  wineserver -f -p &
  wait
) </dev/null >"$servers/wine/wineserver.log" 2>&1 &
echo $! >"$servers/wine/wineserver.pid"
wineboot </dev/null >"$servers/wine/wineboot.log" 2>&1 \
  || { win_say "wineboot failed"; cat "$servers/wine/wineboot.log" >&2; exit 1; }

DLOCK_TEST_WINE="$(command -v wine)"
export DLOCK_TEST_WINE
export DLOCK_TEST_DLOCKD_EXE="$win_bin/dlockd.exe" DLOCK_TEST_DLOCK_EXE="$win_bin/dlock.exe"
export DLOCK_TEST_CONSOLE_EVENT_EXE="$win_bin/console-event.exe"
