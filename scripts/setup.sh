#!/usr/bin/env bash
# Installs what building pilot needs on a fresh Debian machine, idempotently:
# - CMake >= 3.28 and libclang, which lightgbm3 needs to build LightGBM from C++ source
#   (Debian's apt has CMake 3.25, so CMake comes from PyPI);
# - kubernetes-validate (PyPI), which the tests run on the manifests `--emit k8s` writes;
# - moto's S3 server (PyPI), which the tests of `fleet --results s3://...` write to;
# - Chromium (Debian), in which the report tests screenshot `pilot report`'s HTML;
# - the Rust toolchain is assumed present (rustup).
set -euo pipefail

need_cmake() {
  command -v cmake >/dev/null 2>&1 || return 0
  local v; v=$(cmake --version | head -1 | awk '{print $3}')
  # sort -V puts the smaller version first: rebuild unless 3.28 <= v.
  [ "$(printf '%s\n3.28.0\n' "$v" | sort -V | head -1)" != "3.28.0" ]
}

if need_cmake; then
  echo "setup: installing CMake >= 3.28 from PyPI" >&2
  python3 -m pip install --quiet 'cmake>=3.28'
fi

# bindgen loads libclang itself (libclang.so or libclang-N.so), not libclang-cpp, which some
# images ship alone.
has_libclang() {
  ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 ||
    ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so'
}

if ! has_libclang; then
  echo "setup: installing libclang-dev" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev >/dev/null
fi

# The tests validate the Kubernetes manifests `pilot recommend --emit k8s` writes against the
# Kubernetes OpenAPI schemas, which kubernetes-validate ships (no cluster, no network).
if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  echo "setup: installing kubernetes-validate" >&2
  python3 -m pip install --quiet 'kubernetes-validate==1.37.0'
fi

# The tests of `pilot fleet --results s3://...` run against moto's S3 server (an emulator of
# AWS's REST API; no bucket can be reached from CI).
if ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
  echo "setup: installing moto's S3 server" >&2
  python3 -m pip install --quiet 'moto[server]==5.2.1'
fi

# The report tests screenshot `pilot report`'s HTML in a real headless browser: Debian's
# Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
